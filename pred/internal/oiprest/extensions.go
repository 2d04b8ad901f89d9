package oiprest

import (
	"net/http"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/prepred/prepred/pred/internal/tritonext"
)

// Triton's REST extensions:
//
//	GET /v2/models/{model}[/versions/{version}]/config  model configuration
//	GET /v2/models[/{model}[/versions/{version}]]/stats model statistics
func (h *Handler) handleExtensions() {
	h.mux.HandleFunc("GET /v2/models/stats", h.modelStats)
	for _, prefix := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		h.mux.HandleFunc("GET "+prefix+"/config", h.modelConfig)
		h.mux.HandleFunc("GET "+prefix+"/stats", h.modelStats)
	}
}

// modelConfig answers the model version's configuration as Triton's
// inference.ModelConfig in JSON, as Triton does.
func (h *Handler) modelConfig(w http.ResponseWriter, r *http.Request) {
	v, err := version(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	model := r.PathValue("model")
	c, err := h.run.Config(model, v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeProtoJSON(w, r, tritonext.ModelConfig(model, c))
}

// modelStats answers {"model_stats": [...]}, Triton's
// ModelStatisticsResponse in JSON.
func (h *Handler) modelStats(w http.ResponseWriter, r *http.Request) {
	v, err := version(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	stats, err := h.run.Statistics(r.PathValue("model"), v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeProtoJSON(w, r, tritonext.ModelStatistics(stats))
}

func writeProtoJSON(w http.ResponseWriter, r *http.Request, m proto.Message) {
	body, err := tritonext.MarshalJSON(m)
	if err != nil {
		writeErrorStatus(w, r, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
