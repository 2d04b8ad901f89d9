package e2e

// Tests of the release contract: pred announces each model version's
// preprocessing spec and fingerprint, prep executes that spec and sends
// the fingerprint, and no skew between releases makes prep answer with a
// label computed from a tensor preprocessed for another spec.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// expectLabel fails the test unless a is a 200 top-k answer of label from
// the given model version.
func expectLabel(t *testing.T, a answer, label string, version int64) {
	t.Helper()
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("want %q from version %d, got %v", label, version, a)
	}
	got, v, err := a.label()
	if err != nil || got != label || v != version {
		t.Fatalf("want %q from version %d, got %q from version %d (%v)", label, version, got, v, err)
	}
}

// readyFingerprint returns the spec fingerprint prep's /ready reports.
func readyFingerprint(t *testing.T, prep *preptest.Server) string {
	t.Helper()
	a := get(t, prep.URL+"/ready")
	var body struct {
		Fingerprint string `json:"spec_fingerprint"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &body) != nil {
		t.Fatalf("/ready: %v", a)
	}
	return body.Fingerprint
}

// fingerprintOf is the fingerprint pred announces for the colors spec
// changed by edit.
func fingerprintOf(t *testing.T, edit func(*predv1.ModelConfig)) string {
	t.Helper()
	cfg := &predv1.ModelConfig{Preprocess: colorsSpec()}
	if edit != nil {
		edit(cfg)
	}
	fp, err := spec.Fingerprint(cfg.Preprocess)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// colorsSpec is the generated colors model's spec (see the team brief).
func colorsSpec() *predv1.PreprocessSpec {
	return &predv1.PreprocessSpec{
		SchemaVersion: 1,
		Input:         "input",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_SQUASH,
		Interpolation: predv1.Interpolation_INTERPOLATION_BILINEAR,
		Width:         32,
		Height:        32,
		Scale:         0.003921569,
		Mean:          []float32{0.485, 0.456, 0.406},
		Std:           []float32{0.229, 0.224, 0.225},
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
	}
}

// TestPredReleaseChangesUnderPrep: prep keeps running while pred is
// restarted on the same address with another release. prep re-reads the
// contract by itself and executes the new spec: first an old prep meets a
// newer pred release (version 2, BGR), then pred gets a release it refuses
// to load (a spec schema it does not know) and prep answers every request
// with pred's reason, then the release is rolled back (version 1, RGB)
// under the same prep.
func TestPredReleaseChangesUnderPrep(t *testing.T) {
	body := redBody(t)
	rgbRelease := release(t, []int64{1}, nil)
	bgrRelease := release(t, []int64{1, 2}, bgr) // latest 1: serves version 2
	badRelease := release(t, []int64{1, 2}, func(c *predv1.ModelConfig) { c.Preprocess.SchemaVersion = 2 })

	pred := startPred(t, rgbRelease, "")
	addr := pred.GRPCAddr
	prep := startPrep(t, addr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	expectLabel(t, predictRed(t, prep, body), "red", 1)
	if fp := readyFingerprint(t, prep); fp != fingerprintOf(t, nil) {
		t.Fatalf("/ready fingerprint %s, want the RGB spec's %s", fp, fingerprintOf(t, nil))
	}

	steps := []struct {
		name    string
		repo    string
		version int64
		edit    func(*predv1.ModelConfig)
		label   string
		// refused, if set, is pred's reason for not serving the release,
		// which every answer must carry.
		refused string
	}{
		{name: "new pred release under old prep", repo: bgrRelease, version: 2, edit: bgr, label: "blue"},
		{name: "pred release pred refuses", repo: badRelease, refused: "schema_version is 2"},
		{name: "old pred release under new prep", repo: rgbRelease, version: 1, label: "red"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			mark := prep.Mark()
			if code := pred.Stop(); code != 0 {
				t.Fatalf("pred exited with %d", code)
			}
			pred = startPred(t, st.repo, addr)
			if st.refused != "" {
				expectRefusal(t, prep, body, st.refused)
				return
			}
			prep.WaitLogSince(t, mark, contractTimeout, isContractLoaded(st.version))
			expectLabel(t, predictRed(t, prep, body), st.label, st.version)
			if fp, want := readyFingerprint(t, prep), fingerprintOf(t, st.edit); fp != want {
				t.Errorf("/ready fingerprint %s, want %s", fp, want)
			}
		})
	}
}

// expectRefusal sends the red image until prep answers with pred's reason
// for not serving the model; every answer must be a 503. prep reconnects
// to a restarted pred by itself and nothing signals when it has, so this
// polls, within contractTimeout.
func expectRefusal(t *testing.T, prep *preptest.Server, body []byte, reason string) {
	t.Helper()
	deadline := time.Now().Add(contractTimeout)
	for {
		a := predictRed(t, prep, body)
		code, msg := a.errorCode()
		if a.status != http.StatusServiceUnavailable || code != "pred_unavailable" {
			t.Fatalf("want 503 pred_unavailable, got %v", a)
		}
		if strings.Contains(msg, reason) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer with pred's reason %q within %v; last: %v", reason, contractTimeout, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countVersion counts the 200 answers from the given model version.
func countVersion(version int64) func([]answer) int {
	return func(as []answer) int {
		n := 0
		for _, a := range as {
			if a.err == nil && a.status == http.StatusOK {
				if _, v, err := a.label(); err == nil && v == version {
					n++
				}
			}
		}
		return n
	}
}

// TestVersionSwapUnderLoad: clients keep sending the red image while the
// model is swapped from version 1 (RGB) to version 2 (BGR, same weights),
// either through pred's model management API (pred keeps running and
// replaces the model, finishing version 1's requests in flight) or by
// restarting pred with the new release on the same address. Every answer
// is the label of the spec of the version that answered (red from 1, blue
// from 2): no answer mixes a tensor preprocessed for one version with the
// other. A request that meets the swap is preprocessed again with the new
// spec and re-sent, so the management API swap causes no error at all;
// a restart only the clean 503 pred_unavailable of the time no pred
// listens or the new one has no version ready yet. Version 1
// answers start before the swap is done, version 2 answers after it
// started; with a restart, every version 1 answer ends before the first
// version 2 answer starts.
func TestVersionSwapUnderLoad(t *testing.T) {
	const (
		clients = 4
		// maxAnswers bounds the load; the test needs far fewer.
		maxAnswers = 5000
		// perPhase is how many successes each phase needs.
		perPhase = 30
		// pace spaces each client's requests, so that the fast failures
		// while pred restarts stay few.
		pace = 5 * time.Millisecond
	)
	body := redBody(t)
	tests := []struct {
		name string
		// start starts pred with version 1 and returns the swap that makes
		// it serve version 2.
		start func(t *testing.T) (pred *predtest.Server, swap func())
		// ordered: the two versions never serve at the same time.
		ordered bool
		// downtime: pred does not listen for a while (503 pred_unavailable
		// is expected then); otherwise every answer must be a success.
		downtime bool
	}{
		{
			name: "management API",
			start: func(t *testing.T) (*predtest.Server, func()) {
				repo := release(t, []int64{1}, nil)
				pred := startPred(t, repo, "", "--management-api")
				return pred, func() {
					writeRelease(t, repo, []int64{1, 2}, bgr)
					a := post(context.Background(), http.DefaultClient, "http://"+pred.HTTPAddr+"/v2/repository/models/colors/load", nil)
					if a.err != nil || a.status != http.StatusOK {
						t.Fatalf("load version 2: %v", a)
					}
				}
			},
		},
		{
			name: "pred restart",
			start: func(t *testing.T) (*predtest.Server, func()) {
				pred := startPred(t, release(t, []int64{1}, nil), "")
				return pred, func() {
					if code := pred.Stop(); code != 0 {
						t.Fatalf("pred exited with %d", code)
					}
					startPred(t, release(t, []int64{1, 2}, bgr), pred.GRPCAddr)
				}
			},
			ordered:  true,
			downtime: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pred, swap := tt.start(t)
			prep := startPrep(t, pred.GRPCAddr, "--request-timeout", "5s")
			prep.WaitLog(t, contractTimeout, isContractLoaded(1))

			client := newHTTPClient(clients)
			l := startLoad(t, clients, maxAnswers, pace, func(ctx context.Context) answer {
				return post(ctx, client, prep.URL+"/predict/topk?k=1", body)
			})
			l.waitFor(t, "answers from version 1", atLeast(perPhase, countOK(time.Time{})))
			swapStart := time.Now()
			swap()
			swapDone := time.Now()
			l.waitFor(t, "answers from version 2", atLeast(perPhase, countVersion(2)))
			answers := l.stop()

			var lastV1, firstV2 time.Time
			var ok1, ok2 int
			codes := map[string]int{}
			for i, a := range answers {
				switch {
				case a.err != nil:
					t.Fatalf("answer %d: %v", i, a)
				case a.status == http.StatusOK:
					label, version, err := a.label()
					switch {
					case err != nil:
						t.Fatalf("answer %d: %v", i, err)
					case version == 1 && label == "red":
						ok1++
						if a.end.After(lastV1) {
							lastV1 = a.end
						}
						if !a.start.Before(swapDone) {
							t.Errorf("answer %d from version 1 started %v after the swap was done", i, a.start.Sub(swapDone))
						}
					case version == 2 && label == "blue":
						ok2++
						if firstV2.IsZero() || a.start.Before(firstV2) {
							firstV2 = a.start
						}
						if a.start.Before(swapStart) {
							t.Errorf("answer %d from version 2 started %v before the swap", i, swapStart.Sub(a.start))
						}
					default:
						t.Fatalf("answer %d: label %q from version %d: a tensor preprocessed for the other version", i, label, version)
					}
				default:
					code, msg := a.errorCode()
					codes[code]++
					if !tt.downtime || a.status != http.StatusServiceUnavailable || code != "pred_unavailable" {
						t.Errorf("answer %d: %d %s: %s; want no error but the 503 pred_unavailable of a pred restart", i, a.status, code, msg)
					}
				}
			}
			retried := 0
			for _, line := range prep.Logs() {
				if strings.Contains(line, `"model changed during the request; preprocessing again with the new contract"`) {
					retried++
				}
			}
			t.Logf("%d answers: %d red from version 1, %d blue from version 2, errors %v, %d retried with the new contract; swap took %v",
				len(answers), ok1, ok2, codes, retried, swapDone.Sub(swapStart))
			if tt.ordered && !lastV1.Before(firstV2) {
				t.Errorf("a version 1 answer ended at %v, after a version 2 answer started at %v", lastV1, firstV2)
			}
		})
	}
}

// newerSpec is what a newer pred release might announce: schema version 2
// with a field this release does not know (number 100, an operation).
func newerSpec(s *predv1.PreprocessSpec) {
	s.SchemaVersion = 2
	s.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 100, protowire.VarintType), 1))
}

// TestSpecPrepCannotExecute: a spec prep cannot execute never reaches the
// image. Where pred itself does not know the spec (its config names a newer
// schema or an unknown operation) pred refuses to load the model and says
// why, and prep is not ready with pred's reason; where pred announces such
// a spec (a newer pred, simulated by a proxy rewriting ModelMetadata with a
// correct fingerprint) prep refuses it and is not ready with a message
// that names the versions. Either way every prediction is a 503 and pred
// runs nothing.
func TestSpecPrepCannotExecute(t *testing.T) {
	body := redBody(t)
	stock := release(t, []int64{1}, nil)
	tests := []struct {
		name string
		// config edits pred's config; announce rewrites the spec pred
		// announces, in transit.
		config   func(*predv1.ModelConfig)
		announce func(*predv1.PreprocessSpec)
		// want are the parts of prep's reason.
		want []string
	}{
		{
			name:   "config with a newer schema",
			config: func(c *predv1.ModelConfig) { c.Preprocess.SchemaVersion = 2 },
			want:   []string{`model "colors" is unavailable`, "schema_version is 2", "implements 1..1"},
		},
		{
			name:   "config with an unknown resize mode",
			config: func(c *predv1.ModelConfig) { c.Preprocess.ResizeMode = 99 },
			want:   []string{`model "colors" is unavailable`, "resize_mode must be set to a known value (got 99)"},
		},
		{
			name:     "newer pred announces a newer schema",
			announce: newerSpec,
			want:     []string{`model "colors" version 1`, "schema_version 2 is not supported by this prep (knows 1..1)"},
		},
		{
			name:     "newer pred announces an unknown resize mode",
			announce: func(s *predv1.PreprocessSpec) { s.ResizeMode = 99 },
			want:     []string{`model "colors" version 1`, "resize_mode 99 is not supported by this prep"},
		},
		{
			name:     "newer pred announces an unknown interpolation",
			announce: func(s *predv1.PreprocessSpec) { s.Interpolation = 7 },
			want:     []string{`model "colors" version 1`, "interpolation 7 is not supported by this prep"},
		},
		{
			name: "older pred announces no spec",
			announce: func(s *predv1.PreprocessSpec) {
				proto.Reset(s)
			},
			want: []string{`model "colors" version 1`, "announces no preprocess spec"},
		},
		{
			name:     "newer pred announces an unknown color order",
			announce: func(s *predv1.PreprocessSpec) { s.ColorOrder = 5 },
			want:     []string{`model "colors" version 1`, "color_order 5 is not supported by this prep"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := stock
			if tt.config != nil {
				repo = release(t, []int64{1}, tt.config)
			}
			pred := startPred(t, repo, "")
			px := startProxy(t, pred.GRPCAddr)
			if tt.announce != nil {
				rewrite := func(md *predv1.ModelMetadataResponse) {
					s := proto.Clone(md.GetPreprocess()).(*predv1.PreprocessSpec)
					tt.announce(s)
					if proto.Size(s) == 0 {
						md.Preprocess, md.SpecFingerprint = nil, ""
						return
					}
					fp, err := spec.Fingerprint(s)
					if err != nil {
						panic(err)
					}
					md.Preprocess, md.SpecFingerprint = s, fp
				}
				px.announce.Store(&rewrite)
			}
			prep := startPrep(t, px.Addr)
			prep.WaitLog(t, contractTimeout, isContractRefused(tt.want...))

			a := get(t, prep.URL+"/ready")
			code, msg := a.errorCode()
			if a.status != http.StatusServiceUnavailable || code != "not_ready" {
				t.Errorf("/ready: %v, want 503 not_ready", a)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("/ready message %q lacks %q", msg, w)
				}
			}
			for range 3 {
				a := predictRed(t, prep, body)
				if code, _ := a.errorCode(); a.status != http.StatusServiceUnavailable || code != "not_ready" {
					t.Errorf("/predict/topk: %v, want 503 not_ready", a)
				}
			}
			if n := px.forwarded.Load(); n != 0 {
				t.Errorf("%d predictions reached pred", n)
			}
			if tt.config != nil {
				checkPredRefuses(t, pred, tt.want[1])
			}
		})
	}
}

// checkPredRefuses checks that pred lists the colors model as UNAVAILABLE
// with a reason containing why.
func checkPredRefuses(t *testing.T, pred *predtest.Server, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := predv1.NewPredServiceClient(pred.Dial(t)).ListModels(ctx, &predv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(resp.GetModels(), func(m *predv1.ModelVersionState) bool { return m.GetModel() == "colors" })
	if i < 0 {
		t.Fatalf("pred does not list colors: %v", resp.GetModels())
	}
	if m := resp.GetModels()[i]; m.GetState() != "UNAVAILABLE" || !strings.Contains(m.GetReason(), why) {
		t.Errorf("pred lists colors as %s (%q), want UNAVAILABLE because %q", m.GetState(), m.GetReason(), why)
	}
}

// TestFingerprintTampered: a fingerprint that is not the one pred announces
// is refused with FAILED_PRECONDITION, whether a client sends it or it is
// altered between prep and pred; prep then answers 409 and never a label,
// and serves again once the fingerprint arrives intact.
func TestFingerprintTampered(t *testing.T) {
	body := redBody(t)
	pred := startPred(t, release(t, []int64{1}, nil), "")
	wrong := fingerprintOf(t, bgr) // a real fingerprint, of another spec

	t.Run("direct", func(t *testing.T) {
		rpc := predv1.NewPredServiceClient(pred.Dial(t))
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		md, err := rpc.ModelMetadata(ctx, &predv1.ModelMetadataRequest{Model: "colors"})
		if err != nil {
			t.Fatal(err)
		}
		red := predtest.ConstantImages(md.GetPreprocess(), [3]uint8{255, 0, 0})
		request := func(fp string) *predv1.PredictRequest {
			return &predv1.PredictRequest{Model: "colors", Version: md.GetVersion(), SpecFingerprint: fp, Inputs: []*predv1.Tensor{{
				Name: "input", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 32, 32}, RawData: red,
			}}}
		}
		resp, err := rpc.Predict(ctx, request(md.GetSpecFingerprint()))
		if err != nil {
			t.Fatalf("with the announced fingerprint: %v", err)
		}
		if got := colorsLabels[predtest.Argmax(predtest.Float32s(resp.GetOutputs()[0].GetRawData()))]; got != "red" {
			t.Fatalf("with the announced fingerprint: %q, want red", got)
		}
		for _, fp := range []string{wrong, "sha256:00000000000000000000000000000000", "not a fingerprint"} {
			_, err := rpc.Predict(ctx, request(fp))
			if status.Code(err) != codes.FailedPrecondition {
				t.Errorf("fingerprint %q: %v, want FailedPrecondition", fp, err)
				continue
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, fp) || !strings.Contains(msg, md.GetSpecFingerprint()) {
				t.Errorf("fingerprint %q: message %q does not name both fingerprints", fp, msg)
			}
		}
	})

	t.Run("through prep", func(t *testing.T) {
		px := startProxy(t, pred.GRPCAddr)
		prep := startPrep(t, px.Addr)
		prep.WaitLog(t, contractTimeout, isContractLoaded(1))
		expectLabel(t, predictRed(t, prep, body), "red", 1)

		okBefore := predOK(t, pred)
		sent := px.forwarded.Load()
		px.tamper.Store(&wrong)
		const tries = 5
		for range tries {
			a := predictRed(t, prep, body)
			code, msg := a.errorCode()
			if a.status != http.StatusConflict || code != "contract_mismatch" || !strings.Contains(msg, "spec_fingerprint mismatch") {
				t.Errorf("tampered fingerprint: %v, want 409 contract_mismatch", a)
			}
		}
		if n := px.forwarded.Load() - sent; n != tries {
			t.Errorf("%d tampered predictions reached pred, want %d", n, tries)
		}
		if ok := predOK(t, pred); ok != okBefore {
			t.Errorf("pred answered %v tampered predictions", ok-okBefore)
		}

		px.tamper.Store(nil)
		expectLabel(t, predictRed(t, prep, body), "red", 1)
	})

	t.Run("announced fingerprint tampered", func(t *testing.T) {
		px := startProxy(t, pred.GRPCAddr)
		rewrite := func(md *predv1.ModelMetadataResponse) { md.SpecFingerprint = wrong }
		px.announce.Store(&rewrite)
		prep := startPrep(t, px.Addr)
		prep.WaitLog(t, contractTimeout, isContractRefused("announces spec_fingerprint", wrong))
		a := predictRed(t, prep, body)
		if code, _ := a.errorCode(); a.status != http.StatusServiceUnavailable || code != "not_ready" {
			t.Errorf("/predict/topk: %v, want 503 not_ready", a)
		}
		if n := px.forwarded.Load(); n != 0 {
			t.Errorf("%d predictions reached pred", n)
		}
	})
}
