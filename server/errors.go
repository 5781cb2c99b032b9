package server

import (
	"net/http"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers err as the JSON error of the contract. Internal errors
// are logged with their detail and shown as "internal".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeErrorStatus(w, r, 0, err)
}

// writeErrorStatus is writeError with the status forced (0: from the table).
// A client that went away is counted as 499 and answered nothing: what
// failed on the way is the consequence of its leaving, not an error.
func (s *Server) writeErrorStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	if transport.ClientGone(r) {
		clientGone(w)
		s.log.DebugContext(r.Context(), "client went away", "err", err, "path", r.URL.Path, "request_id", requestID(r.Context()))
		return
	}
	code, st := transport.Classify(err)
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
	setErrorHeaders(w, r, code, status)
	writeJSON(w, status, body)
}

// clientGone records status 499 for the metrics and the access log. Nothing
// is written: there is no one to read it.
func clientGone(w http.ResponseWriter) {
	if sw, ok := w.(*statusWriter); ok && sw.status == 0 {
		sw.status = transport.StatusClientClosed
	}
}

// setErrorHeaders sets what an error answer carries besides its body, in
// the JSON API and the /v1 gateway alike: Retry-After on a 503 or 429, the
// WWW-Authenticate challenge on a 401.
func setErrorHeaders(w http.ResponseWriter, r *http.Request, code string, status int) {
	transport.SetRetryAfter(w.Header(), status)
	if status == http.StatusUnauthorized {
		transport.Challenge(w.Header(), r, transport.Bearer)
	}
}
