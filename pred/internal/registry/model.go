package registry

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/repository"
)

// Model is one model of the repository, with one configuration: a changed
// configuration makes a new Model. Its exported fields do not change once
// registered.
type Model struct {
	Name   string
	Config *predv1.ModelConfig
	Labels []string
	// Fingerprint is spec.Fingerprint(Config.Preprocess); empty without a
	// spec.
	Fingerprint string

	state  State // UNAVAILABLE when the model as a whole cannot load
	reason string
	// note explains why READY versions serve that the repository no
	// longer selects (their replacements failed).
	note     string
	versions []*Version // ascending
	// rejected is the last changed directory that failed to replace this
	// model: Sync does not load it again until it changes.
	rejected *rejection
}

// Inputs returns the model's inputs as clients see them: the configured
// shapes with the batch dimension, -1, first when the model batches.
func (m *Model) Inputs() []*predv1.TensorSpec {
	return withBatchDim(m.Config.GetInputs(), m.Config.GetMaxBatchSize())
}

// Outputs returns the model's outputs as clients see them (see Inputs).
func (m *Model) Outputs() []*predv1.TensorSpec {
	return withBatchDim(m.Config.GetOutputs(), m.Config.GetMaxBatchSize())
}

func withBatchDim(specs []*predv1.TensorSpec, maxBatchSize int32) []*predv1.TensorSpec {
	out := make([]*predv1.TensorSpec, len(specs))
	for i, t := range specs {
		shape := t.GetShape()
		if maxBatchSize > 0 {
			shape = append([]int64{-1}, shape...)
		}
		out[i] = &predv1.TensorSpec{Name: t.GetName(), Dtype: t.GetDtype(), Shape: shape}
	}
	return out
}

// rejection is a scanned model directory that failed to load, with the
// stamps its version files had.
type rejection struct {
	dir    *repository.Model
	stamps []fileStamp
}

func rejectionOf(sm *repository.Model) *rejection {
	rj := &rejection{dir: sm}
	for _, v := range sm.Versions {
		rj.stamps = append(rj.stamps, stampOf(v.Path))
	}
	return rj
}

// matches reports whether a new scan found the rejected directory
// unchanged: configuration, labels and version files.
func (rj *rejection) matches(sm *repository.Model) bool {
	if rj == nil || !proto.Equal(rj.dir.Config, sm.Config) || !slices.Equal(rj.dir.Labels, sm.Labels) || len(rj.dir.Versions) != len(sm.Versions) {
		return false
	}
	for i, v := range sm.Versions {
		if v.Number != rj.dir.Versions[i].Number || stampOf(v.Path) != rj.stamps[i] {
			return false
		}
	}
	return true
}

// Version is one version of a model.
type Version struct {
	Model  *Model
	Number int64
	path   string
	// stamp identifies the model file's contents when it was loaded, so a
	// version that failed is retried once its file changes.
	stamp fileStamp

	state   State
	reason  string
	session *ortrt.Session
	batcher *batcher.Batcher
	metrics *metrics.Version
	serving Serving
	// outputDims holds, per output, the configured non-batch dimensions
	// when all are fixed and the elements are of fixed size (so outputs
	// can be preallocated), else nil.
	outputDims [][]int64
	// inputOrder maps the session's inputs to the configuration's: input
	// i of the session is configured input inputOrder[i]; nil when the
	// orders agree.
	inputOrder []int
	// refs counts the requests holding the version; Add happens under
	// Registry.mu.RLock with the version READY, so a retirement, which
	// changes the state under the write lock, cannot miss one.
	refs sync.WaitGroup
	// closed is closed once the session is closed.
	closed chan struct{}
}

// fileStamp is a file's size and modification time.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: info.Size(), modTime: info.ModTime()}
}

// Closed is closed once the version's session has been closed: after it
// was taken out of service and its in-flight requests finished.
func (v *Version) Closed() <-chan struct{} { return v.closed }

// name describes v in messages.
func (v *Version) name() string { return fmt.Sprintf("model %q version %d", v.Model.Name, v.Number) }

// readyLocked returns the highest READY version of m, or nil.
func (m *Model) readyLocked() *Version {
	for i := len(m.versions) - 1; i >= 0; i-- {
		if m.versions[i].state == StateReady {
			return m.versions[i]
		}
	}
	return nil
}

// versionStatesLocked describes the versions of m, e.g. "1 (READY), 2 (LOADING)".
func (m *Model) versionStatesLocked() string {
	if len(m.versions) == 0 {
		return "none"
	}
	parts := make([]string, len(m.versions))
	for i, v := range m.versions {
		parts[i] = fmt.Sprintf("%d (%s)", v.Number, v.state)
		if v.reason != "" {
			parts[i] = fmt.Sprintf("%d (%s: %s)", v.Number, v.state, v.reason)
		}
	}
	return strings.Join(parts, ", ")
}
