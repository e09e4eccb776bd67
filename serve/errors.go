package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// apiError is an error answered with its status and the JSON body
// {"error": message, "type": kind}.
type apiError struct {
	status int
	kind   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// The kinds of error a client is told.
const (
	kindInvalid     = "invalid_request" // 400: the request is malformed or asks what the model cannot do
	kindTooLarge    = "too_large"       // 413: over a limit on the request's size
	kindOverloaded  = "overloaded"      // 429: the queue is full; retry later
	kindUnavailable = "unavailable"     // 503: shutting down, or the request timed out waiting
	kindInternal    = "internal"        // 500: the model failed
	kindNotFound    = "not_found"       // 404, 405
)

func invalid(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, kindInvalid, fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, kindTooLarge, fmt.Sprintf(format, args...)}
}

// toAPIError is what the client is told of a handler's error. Errors that are not an
// apiError and not the batcher's are the model's failures.
func toAPIError(err error, timeout time.Duration) *apiError {
	var (
		ae *apiError
		tl *TooLargeError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &tl):
		return tooLarge("%v", tl)
	case errors.Is(err, ErrOverloaded):
		return &apiError{http.StatusTooManyRequests, kindOverloaded, err.Error() + "; retry later"}
	case errors.Is(err, ErrClosed):
		return &apiError{http.StatusServiceUnavailable, kindUnavailable, err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{http.StatusServiceUnavailable, kindUnavailable,
			fmt.Sprintf("no answer within the server's timeout of %v; the server is busy, retry later", timeout)}
	case errors.Is(err, context.Canceled):
		return &apiError{http.StatusServiceUnavailable, kindUnavailable, "the request was cancelled"}
	}
	return &apiError{http.StatusInternalServerError, kindInternal, err.Error()}
}

// fromServing says whether err is the batcher's or the request context's, as opposed
// to one about the request's content.
func fromServing(err error) bool {
	var (
		re *RunError
		tl *TooLargeError
	)
	return errors.As(err, &re) || errors.As(err, &tl) || errors.Is(err, ErrOverloaded) || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
