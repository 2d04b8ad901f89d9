package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// openAPIPath turns a gin route pattern into an OpenAPI path template:
// /v1/models/:model/predict -> /v1/models/{model}/predict.
func openAPIPath(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPIMatchesRoutes keeps /openapi.json and the routes in sync: every
// gin route is documented with its method, and every documented operation
// is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	api := startFeatureAPI(t, nil)
	var routes []string
	for _, ri := range api.engine.Routes() {
		routes = append(routes, ri.Method+" "+openAPIPath(ri.Path))
	}
	doc, err := parseOpenAPI(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method := range item {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json documents %s, which is no route", d)
		}
	}
	if len(routes) < 20 {
		t.Errorf("only %d routes: %q", len(routes), routes)
	}
}

// TestOpenAPIDocument checks what a reader of the document relies on: it is
// OpenAPI 3, every operation has a unique operationId, a summary,
// responses and a curl example, and every path parameter is declared.
func TestOpenAPIDocument(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(openAPIDoc, &raw); err != nil {
		t.Fatal(err)
	}
	if v, _ := raw["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi = %q", v)
	}
	checkRefs(t, raw, raw, "#")
	doc, err := parseOpenAPI(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			where := strings.ToUpper(method) + " " + path
			if prev, dup := ids[op.OperationID]; op.OperationID == "" || dup {
				t.Errorf("%s: operationId %q (also %s)", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			if op.Summary == "" || len(op.Responses) == 0 || len(op.Tags) == 0 {
				t.Errorf("%s: summary %q, %d responses, tags %q", where, op.Summary, len(op.Responses), op.Tags)
			}
			if _, ok := op.Responses["200"]; !ok {
				t.Errorf("%s: no 200 response", where)
			}
			// The example names a model of the kind the route serves:
			// colors for a classifier, squares for a detector.
			call := regexp.MustCompile(`localhost:8000` + strings.ReplaceAll(regexp.QuoteMeta(path), `\{model\}`, `(colors|squares)`) + `([?' ]|$)`)
			if len(op.CodeSamples) == 0 || !call.MatchString(op.CodeSamples[0].Source) {
				t.Errorf("%s: no example calling it: %+v", where, op.CodeSamples)
			}
			for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p *oaParameter) bool { return p.In == "path" && p.Name == m[1] && p.Required }) {
					t.Errorf("%s: path parameter %s is not declared", where, m[1])
				}
			}
			if method == "post" && op.RequestBody == nil {
				t.Errorf("%s: no request body", where)
			}
		}
	}
}

// checkRefs fails for every "$ref" in v that does not resolve in root.
func checkRefs(t *testing.T, root, v any, at string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if ref, ok := e.(string); ok && k == "$ref" {
				var cur any = root
				for _, seg := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[seg]
				}
				if cur == nil {
					t.Errorf("%s: dangling $ref %s", at, ref)
				}
				continue
			}
			checkRefs(t, root, e, at+"/"+k)
		}
	case []any:
		for i, e := range v {
			checkRefs(t, root, e, fmt.Sprintf("%s/%d", at, i))
		}
	}
}

func TestPages(t *testing.T) {
	api := startFeatureAPI(t, nil)
	doc, err := parseOpenAPI(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	// Attributes that would load something from elsewhere.
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:)?//`)
	t.Run("openapi.json", func(t *testing.T) {
		r := do(t, http.MethodGet, api.url+"/openapi.json", "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !bytes.Equal(r.body, openAPIDoc) {
			t.Errorf("%d %s", r.status, r.header.Get("Content-Type"))
		}
	})
	t.Run("docs", func(t *testing.T) {
		r := do(t, http.MethodGet, api.url+"/docs", "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%d %s", r.status, r.header.Get("Content-Type"))
		}
		page := string(r.body)
		for path, item := range doc.Paths {
			for method, op := range item {
				card := fmt.Sprintf(`id="%s" data-method="%s" data-path="%s"`, op.OperationID, strings.ToUpper(method), path)
				if !strings.Contains(page, card) {
					t.Errorf("/docs lacks %s %s", method, path)
				}
			}
		}
		for _, want := range []string{"X-Request-Timeout", "curl -s -F file=@image.jpg", "schema-BatchAnswer", "top_k"} {
			if !strings.Contains(page, want) {
				t.Errorf("/docs lacks %q", want)
			}
		}
		if m := external.FindString(page); m != "" {
			t.Errorf("/docs loads %q from elsewhere", m)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP %q", csp)
		}
	})
	t.Run("index", func(t *testing.T) {
		r := do(t, http.MethodGet, api.url+"/", "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%d %s", r.status, r.header.Get("Content-Type"))
		}
		page := string(r.body)
		for _, want := range []string{`id="file"`, `id="topk"`, `id="top-label"`, `predict/topk?k=5`, `Server-Timing`} {
			if !strings.Contains(page, want) {
				t.Errorf("/ lacks %q", want)
			}
		}
		if m := external.FindString(page); m != "" {
			t.Errorf("/ loads %q from elsewhere", m)
		}
	})
}

// serverTiming matches the Server-Timing header of a prediction.
var serverTiming = regexp.MustCompile(`^payload;dur=[0-9.]+, decode_preprocess;dur=[0-9.]+, pred;dur=[0-9.]+, postprocess;dur=[0-9.]+, total;dur=([0-9.]+)$`)

func TestServerTiming(t *testing.T) {
	api := startFeatureAPI(t, nil)
	img := solidJPEG(t, 32, 32, red)
	for _, path := range []string{"/predict", "/predict/label", "/predict/topk", "/predict/batch"} {
		r := do(t, http.MethodPost, api.url+path, "image/jpeg", bytes.NewReader(img))
		m := serverTiming.FindStringSubmatch(r.header.Get(ServerTimingHeader))
		if r.status != http.StatusOK || m == nil {
			t.Errorf("%s: %d Server-Timing %q", path, r.status, r.header.Get(ServerTimingHeader))
			continue
		}
		if total, _ := strconv.ParseFloat(m[1], 64); total <= 0 {
			t.Errorf("%s: total %v", path, total)
		}
	}
	// An error after preprocessing still says where the time went.
	r := do(t, http.MethodPost, api.url+"/predict", "image/jpeg", bytes.NewReader(img[:40]))
	if h := r.header.Get(ServerTimingHeader); !strings.Contains(h, "decode_preprocess;dur=") {
		t.Errorf("error answer Server-Timing %q", h)
	}
}

// metric returns the value of the series of family name whose labels
// include labels: a counter's or gauge's value, a histogram's count; -1 if
// there is none.
func metric(fams []*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	api := startFeatureAPI(t, nil)
	img := solidJPEG(t, 40, 30, red)
	for range 2 {
		if r := do(t, http.MethodPost, api.url+"/predict/label", "image/jpeg", bytes.NewReader(img)); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	do(t, http.MethodPost, api.url+"/v1/models/inverse/predict/batch", "image/jpeg", bytes.NewReader(img))
	do(t, http.MethodGet, api.url+"/nowhere", "", nil)
	api.pred.SetPredict(func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		return nil, status.Error(codes.ResourceExhausted, "queue full")
	})
	do(t, http.MethodPost, api.url+"/predict", "image/jpeg", bytes.NewReader(img))

	r := do(t, http.MethodGet, api.url+"/metrics", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	for _, name := range []string{
		"prep_http_requests_total", "prep_http_request_duration_seconds", "prep_stage_duration_seconds",
		"prep_image_bytes", "prep_image_pixels", "prep_pred_errors_total", "prep_pred_batch_images",
		"prep_model_contract_ready", "prep_model_contract_info", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !regexp.MustCompile(`(?m)^# TYPE ` + name + ` `).Match(r.body) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	fams, err := api.srv.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"prep_http_requests_total", map[string]string{"route": "/predict/label", "method": "POST", "code": "200"}, 2},
		{"prep_http_requests_total", map[string]string{"route": "/v1/models/:model/predict/batch", "code": "200"}, 1},
		{"prep_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "code": "404"}, 1},
		{"prep_http_requests_total", map[string]string{"route": "/predict", "code": "429"}, 1},
		{"prep_http_request_duration_seconds", map[string]string{"route": "/predict/label"}, 2},
		{"prep_stage_duration_seconds", map[string]string{"stage": "payload"}, 4},
		{"prep_stage_duration_seconds", map[string]string{"stage": "decode_preprocess"}, 4},
		{"prep_stage_duration_seconds", map[string]string{"stage": "pred"}, 4},
		{"prep_stage_duration_seconds", map[string]string{"stage": "postprocess"}, 3},
		{"prep_image_bytes", nil, 4},
		{"prep_image_pixels", nil, 4},
		{"prep_pred_batch_images", nil, 4},
		{"prep_pred_errors_total", map[string]string{"code": "ResourceExhausted"}, 1},
		{"prep_model_contract_ready", map[string]string{"model": "colors", "version": "latest", "default": "true"}, 1},
		{"prep_model_contract_ready", map[string]string{"model": "inverse", "version": "latest", "default": "false"}, 1},
		{"prep_model_contract_info", map[string]string{"model": "inverse", "served_version": "3", "spec_fingerprint": api.inverse.GetSpecFingerprint()}, 1},
	}
	for _, tt := range tests {
		if got := metric(fams, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestContractNotReadyMetric(t *testing.T) {
	api := startAPI(t, testTimeout, false)
	r := do(t, http.MethodGet, api.url+"/metrics", "", nil)
	if !strings.Contains(string(r.body), `prep_model_contract_ready{default="true",model="colors",version="latest"} 0`) {
		t.Errorf("/metrics without a contract:\n%s", r.body)
	}
}

func TestAccessLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	api := startFeatureAPI(t, func(c *Config) { c.Logger = zap.New(core) })
	// Served in the test's goroutine: ServeHTTP returns after the access
	// log line is written.
	req := httptest.NewRequest(http.MethodPost, "/v1/models/inverse/predict/batch", bytes.NewReader(solidJPEG(t, 16, 16, color.White)))
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set(RequestIDHeader, "log-7")
	rec := httptest.NewRecorder()
	api.engine.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get(RequestIDHeader) != "log-7" {
		t.Fatalf("%d %s %q", rec.Code, rec.Body, rec.Header().Get(RequestIDHeader))
	}
	if _, ids := api.pred.Requests(); !slices.Equal(ids, []string{"log-7"}) {
		t.Errorf("pred saw request IDs %q", ids)
	}
	lines := logs.FilterMessage("request").AllUntimed()
	if len(lines) != 1 {
		t.Fatalf("%d access log lines, want 1", len(lines))
	}
	line := lines[0].ContextMap()
	want := map[string]any{
		"request_id": "log-7", "method": "POST", "route": "/v1/models/:model/predict/batch", "path": "/v1/models/inverse/predict/batch",
		"status": int64(200), "model": "inverse", "version": int64(3), "images": int64(1),
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v (%T), want %v", k, line[k], line[k], v)
		}
	}
}
