package server

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
	modellab.EINTERNAL:     http.StatusInternalServerError,
}

// retryAfterSeconds is what a 503 tells clients to wait.
const retryAfterSeconds = 1

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify returns the contract code and HTTP status of err. A deadline
// that no layer classified is the service being too slow: 503, not a bug.
func classify(err error) (string, int) {
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
	_, st := classify(err)
	return st
}

// writeError answers err as the JSON error of the contract. Internal errors
// are logged with their detail and shown as "internal".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeErrorStatus(w, r, 0, err)
}

// writeErrorStatus is writeError with the status forced (0: from the table).
func (s *Server) writeErrorStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	code, st := classify(err)
	if code == modellab.EUNAVAILABLE && modellab.ErrorCode(err) != code {
		err = modellab.WrapError(code, err, "the service is busy, try again")
	}
	if status == 0 {
		status = st
	}
	switch code {
	case modellab.EINTERNAL:
		s.log.ErrorContext(r.Context(), "internal error", "err", err, "method", r.Method, "path", r.URL.Path, "request_id", requestID(r.Context()))
	case modellab.EUNAVAILABLE:
		s.log.WarnContext(r.Context(), "unavailable", "err", err, "path", r.URL.Path, "request_id", requestID(r.Context()))
	}
	var body errorBody
	body.Error.Code = code
	body.Error.Message = modellab.ErrorMessage(err)
	if code == modellab.EUNAVAILABLE {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	writeJSON(w, status, body)
}
