// Package oiprest implements the REST binding of the Open Inference
// Protocol (KServe "v2", Triton's HTTP API) with its binary tensor data
// extension:
//
//	GET  /v2                                          server metadata
//	GET  /v2/models/{model}[/versions/{version}]        model metadata
//	GET  /v2/models/{model}[/versions/{version}]/ready  model readiness
//	POST /v2/models/{model}[/versions/{version}]/infer  inference
//	GET  /v2/models/{model}[/versions/{version}]/config model configuration (Triton's)
//	GET  /v2/models[/{model}[/versions/{version}]]/stats statistics (Triton's)
//
// (The health endpoints /v2/health/live and /v2/health/ready are
// package httpapi's.) An inference body is a JSON header, optionally
// followed by binary tensor data: the request header
// Inference-Header-Content-Length gives the JSON's length, and each input
// with the parameter binary_data_size takes that many bytes of the rest, in
// input order. Outputs asked for with the parameter binary_data (or all,
// with the request parameter binary_data_output) come back the same way.
// Errors are {"error": "..."} with the HTTP status of their cause.
//
// String tensors (pred's DATA_TYPE_STRING) have the datatype BYTES, as in
// Triton. As JSON data they are arrays of JSON strings, each string's UTF-8
// bytes one element; as binary data, the BYTES serialization (per element
// a 4-byte little-endian length, then its bytes), whose total size only
// binary_data_size gives. A BYTES output with an element that is not valid
// UTF-8 comes back as binary data even where JSON was asked for, since a
// JSON string cannot carry it unchanged.
//
// An output requested with the parameter "classification": K comes back as
// its top K classes, a BYTES tensor of "value:index:label" strings, as in
// Triton.
package oiprest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/requestlog"
)

// MaxBodyBytes bounds an inference request body. A batch of 8 ResNet-50
// inputs is 4.8 MB as binary data and about 15 MB as JSON numbers; 64 MiB
// leaves room for the largest tensor pred accepts as binary data
// (tensor.MaxElements float32 values, 32 MiB) and for long JSON numbers.
const MaxBodyBytes = 64 << 20

// HeaderLength is the HTTP header giving the length of the JSON part of a
// body that carries binary tensor data, in requests and responses.
const HeaderLength = "Inference-Header-Content-Length"

// Parameter names of the binary tensor data extension.
const (
	binaryDataSize   = "binary_data_size"
	binaryData       = "binary_data"
	binaryDataOutput = "binary_data_output"
)

// Parameters naming extensions pred does not implement.
var unsupportedParameters = []string{"shared_memory_region"}

// Options configure the handler.
type Options struct {
	// Version is the server version GET /v2 announces.
	Version string
}

// Handler serves the protocol's REST endpoints.
type Handler struct {
	run  *infer.Runner
	opts Options
	mux  *http.ServeMux
}

// New returns the handler running requests on run.
func New(run *infer.Runner, o Options) *Handler {
	h := &Handler{run: run, opts: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v2", h.serverMetadata)
	for _, prefix := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		h.mux.HandleFunc("GET "+prefix, h.modelMetadata)
		h.mux.HandleFunc("GET "+prefix+"/ready", h.modelReady)
		h.mux.HandleFunc("POST "+prefix+"/infer", h.infer)
	}
	h.handleExtensions()
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func typeName(d predv1.DataType) string { return oip.DataTypeName(d) }

type errorResponse struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// writeError answers with the error, and records its message for the
// request's log line.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeErrorStatus(w, r, infer.HTTPStatus(err), infer.Message(err))
}

func writeErrorStatus(w http.ResponseWriter, r *http.Request, code int, msg string) {
	requestlog.AddFields(r.Context(), zap.String("error", msg))
	writeJSON(w, code, errorResponse{Error: msg})
}

// version parses the optional {version} path value.
func version(r *http.Request) (int64, error) { return infer.ParseVersion(r.PathValue("version")) }

type serverMetadataResponse struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

func (h *Handler) serverMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, serverMetadataResponse{Name: oip.ServerName, Version: h.opts.Version, Extensions: oip.Extensions})
}

type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMetadataResponse struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []tensorMetadata `json:"inputs"`
	Outputs  []tensorMetadata `json:"outputs"`
}

func (h *Handler) modelMetadata(w http.ResponseWriter, r *http.Request) {
	v, err := version(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	md, err := h.run.Metadata(r.PathValue("model"), v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp := modelMetadataResponse{Name: md.Model, Platform: md.Platform, Versions: []string{}}
	for _, n := range md.Versions {
		resp.Versions = append(resp.Versions, infer.FormatVersion(n))
	}
	resp.Inputs = metadataOf(md.Inputs)
	resp.Outputs = metadataOf(md.Outputs)
	writeJSON(w, http.StatusOK, resp)
}

func metadataOf(specs []*predv1.TensorSpec) []tensorMetadata {
	out := make([]tensorMetadata, len(specs))
	for i, s := range specs {
		out[i] = tensorMetadata{Name: s.GetName(), Datatype: typeName(s.GetDtype()), Shape: s.GetShape()}
	}
	return out
}

type modelReadyResponse struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
}

// modelReady answers 200 when the model (version) is ready, 503 when it is
// known but loading or failed, 404 when unknown.
func (h *Handler) modelReady(w http.ResponseWriter, r *http.Request) {
	v, err := version(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	model := r.PathValue("model")
	ready, err := h.run.Ready(model, v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, modelReadyResponse{Name: model, Ready: ready})
}

func (h *Handler) infer(w http.ResponseWriter, r *http.Request) {
	v, err := version(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeErrorStatus(w, r, bodyErrorStatus(err), err.Error())
		return
	}
	req, err := decodeRequest(body, r.Header.Get(HeaderLength))
	if err != nil {
		writeError(w, r, err)
		return
	}
	req.run.Model, req.run.Version = r.PathValue("model"), v
	resp, err := h.run.Run(r.Context(), req.run)
	if err != nil {
		writeError(w, r, err)
		return
	}
	header, binary, err := encodeResponse(req, resp)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if binary == nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(header)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(header)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(HeaderLength, strconv.Itoa(len(header)))
	w.Header().Set("Content-Length", strconv.Itoa(len(header)+binaryLen(binary)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(header)
	for _, b := range binary {
		_, _ = w.Write(b)
	}
}

func binaryLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// errBodyTooLarge is the error of a body over MaxBodyBytes.
var errBodyTooLarge = fmt.Errorf("the request body exceeds %d bytes", MaxBodyBytes)

// errEncoded is the error of a body with a Content-Encoding.
var errEncoded = errors.New("compressed request bodies (Content-Encoding) are not supported")

func bodyErrorStatus(err error) int {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errEncoded):
		return http.StatusUnsupportedMediaType
	}
	return http.StatusBadRequest
}

// bodyPrealloc bounds the buffer allocated for a body from its announced
// length before any of it has arrived; beyond it the buffer grows with
// the bytes received.
const bodyPrealloc = 1 << 20

// dataAlignment is the alignment the binary tensor data after a JSON
// header is read to, so that ONNX Runtime can use it in place (8: any
// element type).
const dataAlignment = 8

// readBody reads the whole body, refusing more than MaxBodyBytes: before
// reading when the length is announced, else as soon as it is exceeded.
// The body is placed so that the bytes after the JSON header (when
// Inference-Header-Content-Length announces one) are aligned for any
// element type.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil, errEncoded
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	pad := 0
	if n, err := strconv.Atoi(r.Header.Get(HeaderLength)); err == nil && n > 0 {
		pad = (dataAlignment - n%dataAlignment) % dataAlignment
	}
	// Room for the announced length and the read that finds the end, so
	// that the buffer is not reallocated; allocations are 8-aligned.
	size := pad + int(min(max(r.ContentLength, 0), bodyPrealloc)) + bytes.MinRead
	buf := bytes.NewBuffer(make([]byte, pad, size))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	return buf.Bytes()[pad:], nil
}
