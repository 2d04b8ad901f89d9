// Package infertest sets up what the tests of pred's protocol front ends
// run on: ONNX Runtime, a registry on a model repository holding the
// generated models (colors, resnet50) and the test models (testmodels.DTypes
// and the Identity models),
// an infer.Runner on it, and gRPC servers on loopback. ONNX Runtime has one
// environment per process, so the setup is made once per test binary and
// torn down by Teardown from TestMain.
package infertest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/testmodels"
	"github.com/prepred/prepred/pred/modelgen"
	"github.com/prepred/prepred/pred/predtest"
)

// Env is the shared setup.
type Env struct {
	Runtime  *ortrt.Runtime
	Registry *registry.Registry
	Metrics  *metrics.Metrics
	Runner   *infer.Runner
	// Repo is the model repository.
	Repo string
	// Colors is the colors model's configuration.
	Colors *predv1.ModelConfig
}

var (
	once   sync.Once
	env    *Env
	envErr error
)

// Setup returns the shared setup, making it on first use.
func Setup(tb testing.TB) *Env {
	tb.Helper()
	lib, generated := predtest.ORTLibrary(tb), predtest.ModelRepository(tb)
	once.Do(func() { env, envErr = newEnv(lib, generated) })
	if envErr != nil {
		tb.Fatalf("infertest: %v", envErr)
	}
	return env
}

func newEnv(lib, generated string) (*Env, error) {
	repo, err := os.MkdirTemp("", "infertest-models-")
	if err != nil {
		return nil, err
	}
	e := &Env{Repo: repo, Metrics: metrics.New()}
	for _, name := range []string{"colors", "resnet50"} {
		if err := testmodels.Link(repo, generated, name); err != nil {
			return nil, err
		}
	}
	if err := testmodels.Write(repo, append(testmodels.IdentityModels(), testmodels.DTypes)...); err != nil {
		return nil, err
	}
	text, err := os.ReadFile(filepath.Join(repo, "colors", repository.ConfigTextFile))
	if err != nil {
		return nil, err
	}
	if e.Colors, err = repository.ParseConfig(text, false); err != nil {
		return nil, err
	}
	if e.Runtime, err = ortrt.New(lib); err != nil {
		return nil, err
	}
	e.Registry = registry.New(e.Runtime, registry.Options{})
	if err := e.Registry.Load(context.Background(), repo); err != nil {
		return nil, err
	}
	for _, s := range e.Registry.List() {
		if s.State != registry.StateReady {
			return nil, errors.New("model " + s.Model + " is " + string(s.State) + ": " + s.Reason)
		}
	}
	e.Runner = infer.New(e.Registry, e.Metrics)
	return e, nil
}

// Teardown closes the shared setup, if it was made. Call it from TestMain
// after the tests ran.
func Teardown() error {
	if env == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := errors.Join(env.Registry.Close(ctx), env.Runtime.Close(), os.RemoveAll(env.Repo))
	env = nil
	return err
}

// Images returns the colors model's input for constant images of the
// given colors, as raw float32 bytes of shape [len(colors), 3, 32, 32].
func (e *Env) Images(colors ...[3]uint8) []byte {
	return predtest.ConstantImages(e.Colors.GetPreprocess(), colors...)
}

// ColorLabel returns the colors model's label of the largest logit of the
// i-th row of a [N, 9] float32 output.
func ColorLabel(out []byte, i int) string {
	logits := predtest.Float32s(out)
	n := len(modelgen.ColorLabels)
	if len(logits) < (i+1)*n {
		return "<short output>"
	}
	return modelgen.ColorLabels[predtest.Argmax(logits[i*n:(i+1)*n])]
}

// Serve starts a gRPC server with the services on 127.0.0.1:0, stopped when
// the test ends, and returns a connection to it.
func Serve(tb testing.TB, services ...grpcserver.Service) *grpc.ClientConn {
	tb.Helper()
	srv := grpcserver.New(zap.NewNop(), services...)
	srv.SetServing(true)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Close()
		srv.Shutdown(10 * time.Second)
	})
	return conn
}
