// Package transport holds the HTTP conventions that the JSON API (package
// server) and the pages (package web) share, so that both answer alike:
// the one table from domain error codes to statuses, how a request whose
// client left is counted, conditional GET, content negotiation and where a
// request's credentials come from.
package transport

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/modellab/modellab"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[string]int{
	modellab.EINVALID:      http.StatusBadRequest,
	modellab.EUNAUTHORIZED: http.StatusUnauthorized,
	modellab.EFORBIDDEN:    http.StatusForbidden,
	modellab.ENOTFOUND:     http.StatusNotFound,
	modellab.ECONFLICT:     http.StatusConflict,
	modellab.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	modellab.EUNAVAILABLE:  http.StatusServiceUnavailable,
	modellab.ERATELIMITED:  http.StatusTooManyRequests,
	modellab.EINTERNAL:     http.StatusInternalServerError,

	// The gateway's: an inference server answered badly, or too late.
	modellab.EBADGATEWAY:     http.StatusBadGateway,
	modellab.EGATEWAYTIMEOUT: http.StatusGatewayTimeout,
}

// StatusClientClosed is what a request whose client went away before the
// answer is counted and logged as (nginx's 499): not an error, never a 500.
const StatusClientClosed = 499

// RetryAfterSeconds is what a 503 or a 429 tells clients to wait.
const RetryAfterSeconds = 1

// retryAfter is the Retry-After value, a shared slice (assigning it to a
// header map allocates nothing).
var retryAfter = []string{strconv.Itoa(RetryAfterSeconds)}

// SetRetryAfter tells the client when to come back, for the statuses that
// promise one: 503 (overload, a dependency down) and 429 (the caller's
// share used up).
func SetRetryAfter(h http.Header, status int) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		h["Retry-After"] = retryAfter
	}
}

// Classify returns the contract code and HTTP status of err. A deadline
// that no layer classified is the service being too slow: 503, not a bug.
func Classify(err error) (string, int) {
	code := modellab.ErrorCode(err)
	if code == modellab.EINTERNAL && errors.Is(err, context.DeadlineExceeded) {
		code = modellab.EUNAVAILABLE
	}
	if st, ok := statusOf[code]; ok {
		return code, st
	}
	return modellab.EINTERNAL, http.StatusInternalServerError
}

// StatusOf returns the HTTP status of err.
func StatusOf(err error) int {
	_, st := Classify(err)
	return st
}

// ClientGone reports whether r's client went away (its context was
// cancelled): whatever error the handler met on the way is then a
// consequence, not a failure of the service.
func ClientGone(r *http.Request) bool {
	return errors.Is(r.Context().Err(), context.Canceled)
}
