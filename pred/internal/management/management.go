// Package management is pred's model repository API, on its HTTP port in
// the shape of Triton's (KServe v2) repository extension, and on its gRPC
// port as Triton's repository RPCs (see GRPC):
//
//	POST /v2/repository/index                  list every model version with its state
//	POST /v2/repository/models/{model}/load    (re)load a model from the repository
//	POST /v2/repository/models/{model}/unload  take a model out of service
//
// The API changes what pred serves, so it is off unless enabled; enabled,
// it answers only loopback callers, or, when a token is configured, only
// callers that present it as "Authorization: Bearer <token>".
package management

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/registry"
)

// maxBodyBytes bounds a request body; the API's bodies are a few bytes of
// JSON.
const maxBodyBytes = 64 << 10

// Repository is what the API manages; *registry.Registry implements it.
type Repository interface {
	List() []registry.VersionState
	LoadModel(ctx context.Context, name string) error
	UnloadModel(ctx context.Context, name string) error
}

// Options configure the handler.
type Options struct {
	// Enabled turns the API on; when off every call is refused with 403.
	Enabled bool
	// Token, if set, is required from every caller as a bearer token;
	// without one only loopback callers are served.
	Token  string
	Logger *zap.Logger
}

// Handler serves the repository API on the paths above.
func Handler(repo Repository, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	h := &handler{repo: repo, opts: o, access: NewAccess(o)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/repository/index", h.guard(h.index))
	mux.HandleFunc("POST /v2/repository/models/{model}/load", h.guard(h.load))
	mux.HandleFunc("POST /v2/repository/models/{model}/unload", h.guard(h.unload))
	return mux
}

type handler struct {
	repo   Repository
	opts   Options
	access *Access
}

// guard refuses callers the API must not serve: 403 while it is off or
// for a remote caller without a token configured, 401 for a missing or
// wrong token.
func (h *handler) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h.access.Check(r.Header.Get("Authorization"), r.RemoteAddr, "Authorization: Bearer <token>"); err != nil {
			code := http.StatusForbidden
			if err.(*Refusal).Kind == RefusedToken {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pred"`)
				code = http.StatusUnauthorized
			}
			writeError(w, code, err.Error())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		next(w, r)
	}
}

// indexEntry is one entry of the repository index, as Triton writes it.
type indexEntry struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// index answers POST /v2/repository/index with body {"ready": bool}
// (optional): every model version, or only the READY ones.
func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ready bool `json:"ready"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, index(h.repo.List(), req.Ready))
}

// index is the repository index of states, or of the READY ones only.
func index(states []registry.VersionState, ready bool) []indexEntry {
	out := []indexEntry{}
	for _, s := range states {
		if ready && s.State != registry.StateReady {
			continue
		}
		e := indexEntry{Name: s.Model, State: string(s.State), Reason: s.Reason}
		if s.Version > 0 {
			e.Version = strconv.FormatInt(s.Version, 10)
		}
		out = append(out, e)
	}
	return out
}

// loadRequest is the body of a load call. Triton's parameters that
// override the configuration or carry model files are not supported: pred
// loads what the repository holds.
type loadRequest struct {
	Parameters map[string]json.RawMessage `json:"parameters"`
}

func (h *handler) load(w http.ResponseWriter, r *http.Request) {
	var req loadRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Parameters) > 0 {
		names := slices.Sorted(maps.Keys(req.Parameters))
		writeError(w, http.StatusBadRequest, fmt.Sprintf("load parameters %q are not supported: pred loads the model as the repository holds it", names))
		return
	}
	h.apply(w, r, "load", h.repo.LoadModel)
}

func (h *handler) unload(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	// unload_dependents has no meaning without ensembles; any parameter is
	// accepted and ignored.
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.apply(w, r, "unload", h.repo.UnloadModel)
}

// apply runs a load or unload and answers 200 with an empty body, or the
// error.
func (h *handler) apply(w http.ResponseWriter, r *http.Request, action string, op func(context.Context, string) error) {
	model := r.PathValue("model")
	err := op(r.Context(), model)
	log := h.opts.Logger.With(zap.String("action", action), zap.String("model", model), zap.String("remote_addr", r.RemoteAddr))
	if err != nil {
		log.Warn("model repository request failed", zap.String("error", status.Convert(err).Message()))
		writeError(w, httpStatus(status.Code(err)), status.Convert(err).Message())
		return
	}
	log.Info("model repository request")
	w.WriteHeader(http.StatusOK)
}

// httpStatus maps the registry's gRPC codes to HTTP. A model that fails to
// load is 400, as Triton answers.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Canceled, codes.DeadlineExceeded:
		return http.StatusRequestTimeout
	default:
		return http.StatusInternalServerError
	}
}

// decodeBody decodes an optional JSON body into v.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("the request body is larger than %d bytes", maxBodyBytes)
		}
		return fmt.Errorf("read the request body: %w", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("the request body is not the expected JSON object: %w", err)
	}
	return nil
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
