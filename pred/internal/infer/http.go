package infer

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// statusClientClosedRequest is the status the REST front ends log for a
// request whose client went away (nginx's 499; there is no standard one).
const statusClientClosedRequest = 499

// HTTPStatus returns the HTTP status for an error carrying a gRPC status
// code, as grpc-gateway maps them: 400 for a bad request, 404 for an
// unknown model, 503 for one that is not available, and so on.
func HTTPStatus(err error) int {
	switch status.Code(err) {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return statusClientClosedRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Message returns the message of an error carrying a gRPC status, or its
// text.
func Message(err error) string { return status.Convert(err).Message() }
