package ortserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ortserverpb "github.com/prepred/prepred/api/gen/onnxruntime/server"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/requestlog"
)

// MaxBodyBytes bounds a predict request body: a binary PredictRequest
// carries its tensors as raw bytes (a batch of 8 ResNet-50 inputs is 4.8
// MB), JSON as base64 or numbers.
const MaxBodyBytes = 64 << 20

// HTTP headers of ONNX Runtime Server's API.
const (
	// requestIDHeader carries the server's ID of the request in every
	// response.
	requestIDHeader = "X-Ms-Request-Id"
	// clientRequestIDHeader is a client's own ID, echoed back.
	clientRequestIDHeader = "X-Ms-Client-Request-Id"
)

// Media types of a PredictRequest or PredictResponse.
const (
	jsonType = "application/json"
	// protobufTypes are the names clients use for binary protobuf; the
	// first is what pred answers with when the client accepts any.
	octetStream = "application/octet-stream"
)

var protobufTypes = []string{octetStream, "application/x-protobuf", "application/vnd.google.protobuf"}

// PathPrefix is the path the HTTP endpoint serves under.
const PathPrefix = "/v1/models/"

// predictSuffix ends every predict path.
const predictSuffix = ":predict"

// HTTPHandler returns the handler of POST /v1/models/{model}[/versions/{version}]:predict.
func (s *Service) HTTPHandler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// errorJSON is ONNX Runtime Server's error body.
type errorJSON struct {
	Code    int    `json:"error_code"`
	Message string `json:"error_message"`
}

// writeError answers with the error, and records its message for the
// request's log line.
func writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	requestlog.AddFields(r.Context(), zap.String("error", msg))
	body, _ := json.Marshal(errorJSON{Code: code, Message: msg})
	w.Header().Set("Content-Type", jsonType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	id := requestlog.ID(r.Context())
	if id == "" {
		_, id = requestlog.NewContext(r.Context(), "")
	}
	w.Header().Set(requestIDHeader, id)
	if c := r.Header.Get(clientRequestIDHeader); c != "" {
		w.Header().Set(clientRequestIDHeader, c)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, r, http.StatusMethodNotAllowed, "use POST")
		return
	}
	model, version, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("unknown path %q; use %s{model}/versions/{version}%s", r.URL.Path, PathPrefix, predictSuffix))
		return
	}
	reqType, err := mediaType(r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, r, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	respType, err := responseType(r.Header.Get("Accept"), reqType)
	if err != nil {
		writeError(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	body, code, err := readBody(w, r)
	if err != nil {
		writeError(w, r, code, err.Error())
		return
	}
	req := &ortserverpb.PredictRequest{}
	if reqType == jsonType {
		err = protojson.Unmarshal(body, req)
	} else {
		err = proto.Unmarshal(body, req)
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("the body is not a %s PredictRequest: %v", reqType, err))
		return
	}

	v, err := infer.ParseVersion(version)
	if err != nil {
		writeError(w, r, infer.HTTPStatus(err), infer.Message(err))
		return
	}
	if !slices.Contains(s.run.Models(), model) {
		// ONNX Runtime Server ignored the URL's model: so does pred when
		// it does not serve one by that name, if it has a default.
		if def, err := s.defaultModel(); err == nil {
			model, v = def, 0
		}
	}
	resp, err := s.predict(r.Context(), model, v, req)
	if err != nil {
		writeError(w, r, infer.HTTPStatus(err), infer.Message(err))
		return
	}
	var out []byte
	if respType == jsonType {
		out, err = protojson.Marshal(resp)
	} else {
		out, err = proto.Marshal(resp)
	}
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, fmt.Sprintf("encode the response: %v", err))
		return
	}
	w.Header().Set("Content-Type", respType)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// parsePath splits /v1/models/{model}[/versions/{version}]:predict. Model
// names hold no '/' or ':'.
func parsePath(path string) (model, version string, ok bool) {
	rest, ok := strings.CutPrefix(path, PathPrefix)
	if !ok {
		return "", "", false
	}
	if rest, ok = strings.CutSuffix(rest, predictSuffix); !ok {
		return "", "", false
	}
	model, version, hasVersion := strings.Cut(rest, "/versions/")
	if model == "" || strings.ContainsAny(model, "/:") || (hasVersion && (version == "" || strings.ContainsAny(version, "/:"))) {
		return "", "", false
	}
	return model, version, true
}

// mediaType returns the request's body type: JSON or one of the protobuf
// types.
func mediaType(contentType string) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && (mt == jsonType || slices.Contains(protobufTypes, mt)) {
		return mt, nil
	}
	return "", fmt.Errorf("content type %q is not supported; send %s (PredictRequest as JSON) or %s (binary PredictRequest)", contentType, jsonType, strings.Join(protobufTypes, ", "))
}

// responseType picks the response's type from the Accept header: the first
// supported type it names, else (none, or */*) the request's type.
func responseType(accept, reqType string) (string, error) {
	if strings.TrimSpace(accept) == "" {
		return reqType, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch {
		case mt == jsonType || slices.Contains(protobufTypes, mt):
			return mt, nil
		case mt == "*/*" || mt == "application/*":
			return reqType, nil
		}
	}
	return "", fmt.Errorf("the Accept header %q names no supported type (%s, %s)", accept, jsonType, strings.Join(protobufTypes, ", "))
}

// readBody reads the whole body, refusing more than MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	tooLarge := fmt.Errorf("the request body exceeds %d bytes", MaxBodyBytes)
	if r.ContentLength > MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("read the request body: %w", err)
	}
	return body, http.StatusOK, nil
}
