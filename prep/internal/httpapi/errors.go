package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/payload"
	"github.com/prepred/prepred/prep/internal/postprocess"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// Error codes of prep's own; payload and imageprep codes pass through.
const (
	codeNotReady             = "not_ready"
	codeShuttingDown         = "shutting_down"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeBodyTooLarge         = "body_too_large"
	codeBadRequest           = "bad_request"
	codeOverloaded           = "overloaded"
	codePredUnavailable      = "pred_unavailable"
	codePredOverloaded       = "pred_overloaded"
	codeDeadlineExceeded     = "deadline_exceeded"
	codeContractChanged      = "contract_changed"
	codeContractMismatch     = "contract_mismatch"
	codePredRejectedInput    = "pred_rejected_input"
	codePredError            = "pred_error"
	codeInvalidModelOutput   = "invalid_model_output"
	codeCanceled             = "canceled"
	codeClientClosedRequest  = "client_closed_request"
	codeNotFound             = "not_found"
	codeModelNotFound        = "model_not_found"
	codeInvalidTimeout       = "invalid_timeout"
	codeMethodNotAllowed     = "method_not_allowed"
	codeInternal             = "internal"
)

// errorCodeKey is the gin context key holding the code of the error a
// request was answered with, for the access log.
const errorCodeKey = "prep.error_code"

// apiError is a failed request: the HTTP status and the body's code and
// message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON body of every error answer:
// {"error": {"code": "...", "message": "..."}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// retryAfterSeconds is the Retry-After hint of answers that a retry may
// turn into a success (overload, contract re-read).
const retryAfterSeconds = "1"

// StatusClientClosedRequest is the status of a request whose client
// disconnected before the answer (nginx's 499): logged and counted, though
// no client reads it, so that it is not taken for prep or pred failing.
const StatusClientClosedRequest = 499

// writeError answers the request with e and stops the handler chain. A
// request whose client has gone is answered 499 instead, whatever failed
// because of it.
func writeError(c *gin.Context, e *apiError) {
	if errors.Is(c.Request.Context().Err(), context.Canceled) {
		e = newError(StatusClientClosedRequest, codeClientClosedRequest, "the client closed the connection before the answer (%s)", e.Message)
	}
	c.Set(errorCodeKey, e.Code)
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		c.Header("Retry-After", retryAfterSeconds)
	}
	c.Abort()
	setServerTiming(c)
	// PureJSON: messages quote user input such as "<base64>"; no \u003c.
	c.PureJSON(e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}

// payloadError maps a failure to extract the image from the request.
func payloadError(err error) *apiError {
	var pe *payload.Error
	if errors.As(err, &pe) {
		return &apiError{Status: http.StatusBadRequest, Code: pe.Code, Message: pe.Message}
	}
	return newError(http.StatusBadRequest, codeBadRequest, "%v", err)
}

// imageError maps a failure to turn the image into a tensor; the bool is
// false when err is not about the input (a bug, logged by the caller).
func imageError(err error) (*apiError, bool) {
	var ie *imageprep.Error
	if !errors.As(err, &ie) {
		return newError(http.StatusInternalServerError, codeInternal, "preprocessing failed"), false
	}
	status := http.StatusBadRequest
	switch ie.Code {
	case imageprep.CodeUnsupportedFormat:
		status = http.StatusUnsupportedMediaType
	case imageprep.CodeImageTooLarge:
		status = http.StatusRequestEntityTooLarge
	}
	return &apiError{Status: status, Code: ie.Code, Message: ie.Message}, true
}

// predError maps a failed call to pred made with the given request timeout.
func predError(err error, timeout time.Duration) *apiError {
	var ce *predclient.ContractError
	if errors.As(err, &ce) {
		switch {
		case ce.RefreshErr != nil && status.Code(ce.RefreshErr) == codes.Unavailable:
			// The version prep used is gone and pred serves none yet (a
			// restart with a new release, still loading): the model is
			// unavailable, as it is to a request that arrives now.
			return &apiError{Status: http.StatusServiceUnavailable, Code: codePredUnavailable, Message: ce.Error()}
		case ce.Changed() || ce.RefreshErr != nil:
			return &apiError{Status: http.StatusServiceUnavailable, Code: codeContractChanged, Message: ce.Error()}
		}
		return &apiError{Status: http.StatusConflict, Code: codeContractMismatch, Message: ce.Error()}
	}
	msg := err.Error()
	switch status.Code(err) {
	case codes.Unavailable:
		return &apiError{Status: http.StatusServiceUnavailable, Code: codePredUnavailable, Message: msg}
	case codes.ResourceExhausted:
		return &apiError{Status: http.StatusTooManyRequests, Code: codePredOverloaded, Message: msg}
	case codes.DeadlineExceeded:
		return &apiError{Status: http.StatusGatewayTimeout, Code: codeDeadlineExceeded, Message: fmt.Sprintf("no answer within the request timeout of %v: %s", timeout, msg)}
	case codes.Canceled:
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeCanceled, Message: msg}
	case codes.InvalidArgument:
		return &apiError{Status: http.StatusBadGateway, Code: codePredRejectedInput, Message: msg}
	}
	return &apiError{Status: http.StatusBadGateway, Code: codePredError, Message: msg}
}

// outputError maps a model output that cannot become a prediction.
func outputError(err error) *apiError {
	var oe *postprocess.OutputError
	if errors.As(err, &oe) {
		return &apiError{Status: http.StatusBadGateway, Code: codeInvalidModelOutput, Message: oe.Message}
	}
	return newError(http.StatusBadGateway, codeInvalidModelOutput, "%v", err)
}
