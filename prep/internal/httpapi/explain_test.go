package httpapi

import (
	"context"
	"encoding/json"
	"image/color"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/prep/internal/fakepred"
)

// explainAnswer decodes a JSON explanation, failing on unknown fields.
func explainAnswer(t *testing.T, r response) explainBody {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var b explainBody
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	return b
}

// items is the number of images pred was sent in reqs.
func items(reqs []*predv1.PredictRequest) int {
	n := 0
	for _, r := range reqs {
		n += int(r.GetInputs()[0].GetShape()[0])
	}
	return n
}

// TestExplainParameterErrors: every parameter out of range is a 400 naming
// it, answered before pred runs a single inference.
func TestExplainParameterErrors(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	for _, tt := range []struct{ query, want string }{
		{"window=0", "window"},
		{"window=abc", "window"},
		{"window=33", "window=33 is out of range"},
		{"stride=-1", "stride"},
		{"window=4&stride=5", "stride=5 is out of range"},
		{"window=1&stride=1", "need 1025 inferences"}, // 32x32 patches and the image: one over the limit
		{"baseline=noise", "baseline"},
		{"label=purple", `label="purple"`},
		{"label=", "label"},
		{"class_index=9", "class_index=9 is out of range"},
		{"class_index=-1", "class_index"},
		{"label=red&class_index=2", "give one"},
		{"format=gif", "format"},
	} {
		r := api.postJSON(t, "/explain?"+tt.query, img)
		if msg := wantError(t, r, http.StatusBadRequest, codeBadRequest); !strings.Contains(msg, tt.want) {
			t.Errorf("%s: message %q does not say %q", tt.query, msg, tt.want)
		}
	}
	if reqs, _ := api.pred.Requests(); len(reqs) != 0 {
		t.Errorf("pred got %d requests for refused explanations", len(reqs))
	}
}

// TestExplainBatches: the occluded copies go to pred in batches of at most
// the model's max_batch_size, each with the contract's fingerprint, and
// the answer's inferences are what pred was sent.
func TestExplainBatches(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	r := api.postJSON(t, "/explain?window=8&stride=8&label=white", jsonBody(solidJPEG(t, 64, 48, color.White)))
	b := explainAnswer(t, r)
	if b.Inferences != 17 || b.Label != "white" || b.ClassIndex != 1 || len(b.Grid) != 4 || len(b.Grid[0]) != 4 {
		t.Errorf("explanation %+v, want 17 inferences of white on a 4x4 grid", b)
	}
	if b.Width != 64 || b.Height != 48 || b.Window != 8 || b.Stride != 8 || b.Baseline != "zero" {
		t.Errorf("explanation %+v: wrong size or parameters", b)
	}
	reqs, _ := api.pred.Requests()
	if got := items(reqs); got != b.Inferences {
		t.Errorf("pred was sent %d images, the answer says %d inferences", got, b.Inferences)
	}
	for i, req := range reqs {
		if n := req.GetInputs()[0].GetShape()[0]; n > 8 {
			t.Errorf("request %d: batch of %d, above max_batch_size 8", i, n)
		}
		if req.GetSpecFingerprint() != api.md.GetSpecFingerprint() {
			t.Errorf("request %d: fingerprint %q, want the contract's", i, req.GetSpecFingerprint())
		}
	}
	if got := scrape(t, api.url, "prep_explain_inferences_total"); got != "17" {
		t.Errorf("prep_explain_inferences_total = %s, want 17", got)
	}
	if got := scrape(t, api.url, "prep_explanations_total"); got != "1" {
		t.Errorf("prep_explanations_total = %s, want 1", got)
	}
}

// TestExplainContractChangeRestarts: pred's model changes after the first
// batch of an explanation; the explanation is made again from the start
// with the new contract, so the answer comes from version 2 alone.
func TestExplainContractChangeRestarts(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	v1, v2 := fakepred.ColorsModel(api.md), checkingFingerprint(changedMetadata(t, 2))
	var mu sync.Mutex
	calls := 0
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			resp, err := v1(ctx, req)
			api.pred.SetMetadata(changedMetadata(t, 2), nil) // swapped after answering
			return resp, err
		}
		return v2(ctx, req)
	})
	b := explainAnswer(t, api.postJSON(t, "/explain?window=8&stride=8", jsonBody(solidJPEG(t, 64, 48, color.White))))
	md2 := changedMetadata(t, 2)
	if b.Version != 2 || b.SpecFingerprint != md2.GetSpecFingerprint() {
		t.Errorf("answer of version %d fingerprint %s, want version 2's", b.Version, b.SpecFingerprint)
	}
	reqs, _ := api.pred.Requests()
	// Request 0 (v1, answered), request 1 (v1, refused), then version 2's
	// whole explanation.
	if len(reqs) < 3 || reqs[1].GetSpecFingerprint() != api.md.GetSpecFingerprint() {
		t.Fatalf("pred got %d requests, want a refused version 1 batch before the retry", len(reqs))
	}
	v2Items := 0
	for _, req := range reqs[2:] {
		if req.GetVersion() != 2 || req.GetSpecFingerprint() != md2.GetSpecFingerprint() {
			t.Errorf("after the change: a request of version %d fingerprint %s", req.GetVersion(), req.GetSpecFingerprint())
		}
		v2Items += int(req.GetInputs()[0].GetShape()[0])
	}
	if v2Items != 17 {
		t.Errorf("version 2 was sent %d images, want the whole explanation (17)", v2Items)
	}
	if want := int(reqs[0].GetInputs()[0].GetShape()[0]) + v2Items; b.Inferences != want {
		t.Errorf("inferences %d, want %d (version 1's answered batch and version 2's)", b.Inferences, want)
	}
}

// TestExplainContractKeepsChanging: the model changes again during the
// retry; the answer is 503 contract_changed, not a mixed explanation.
func TestExplainContractKeepsChanging(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	next := int64(2)
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		md := changedMetadata(t, next)
		next++
		api.pred.SetMetadata(md, nil)
		return nil, status.Errorf(codes.FailedPrecondition, "spec fingerprint %q does not match the model's %q", req.GetSpecFingerprint(), md.GetSpecFingerprint())
	})
	wantError(t, api.postJSON(t, "/explain", jsonBody(solidJPEG(t, 64, 48, color.White))), http.StatusServiceUnavailable, codeContractChanged)
}

// TestExplainBudget: an explanation whose tensors do not fit the in-flight
// budget is refused with 503 overloaded before any inference.
func TestExplainBudget(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	// Room for the body and one image's tensor, not for the 2+8 tensors
	// of an explanation's batch (10 x 3x32x32 float32 = 120 KiB).
	budget := inflight.NewBudget(int64(len(img)) + 60<<10)
	srv := httptest.NewServer(New(Config{Client: api.client, RequestTimeout: testTimeout, MaxBodyBytes: testMaxBody, Budget: budget}))
	t.Cleanup(srv.Close)
	if r := do(t, http.MethodPost, srv.URL+"/predict/label", "application/json", strings.NewReader(img)); r.status != http.StatusOK {
		t.Fatalf("a prediction within the budget: %d %s", r.status, r.body)
	}
	before, _ := api.pred.Requests()
	r := do(t, http.MethodPost, srv.URL+"/explain", "application/json", strings.NewReader(img))
	if msg := wantError(t, r, http.StatusServiceUnavailable, codeOverloaded); !strings.Contains(msg, "explanation") {
		t.Errorf("message %q does not name the explanation", msg)
	}
	if after, _ := api.pred.Requests(); len(after) != len(before) {
		t.Errorf("pred got %d requests for a refused explanation", len(after)-len(before))
	}
	if budget.InUse() != 0 {
		t.Errorf("%d bytes still reserved", budget.InUse())
	}
}

// TestExplainDeadline: an explanation's deadline is the timeout header, or
// without one MaxRequestTimeout, not one prediction's RequestTimeout; every
// pred call of it runs under that one deadline.
func TestExplainDeadline(t *testing.T) {
	api := startAPI(t, time.Second, true)
	srv := httptest.NewServer(New(Config{Client: api.client, RequestTimeout: time.Second, MaxRequestTimeout: 40 * time.Second, MaxBodyBytes: testMaxBody}))
	t.Cleanup(srv.Close)
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	for _, tt := range []struct {
		header   []string
		min, max time.Duration
	}{
		{nil, 30 * time.Second, 40 * time.Second},
		{[]string{TimeoutHeader, "5s"}, 2 * time.Second, 5 * time.Second},
	} {
		before := len(api.pred.Deadlines())
		r := do(t, http.MethodPost, srv.URL+"/explain?window=8&stride=8", "application/json", strings.NewReader(img), tt.header...)
		explainAnswer(t, r)
		dls := api.pred.Deadlines()[before:]
		if len(dls) == 0 {
			t.Fatal("pred got no request")
		}
		for i, d := range dls {
			if d < tt.min || d > tt.max {
				t.Errorf("header %v: pred call %d had %v left, want %v to %v", tt.header, i, d, tt.min, tt.max)
			}
		}
	}
}
