package server

import (
	"net/http"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
)

// authenticate returns the caller of an API request, nil when anonymous.
// The API takes bearer tokens only; the session cookie is the pages'.
func (s *Server) authenticate(r *http.Request) (*modellab.User, error) {
	tok, ok, err := transport.Credentials(r, transport.Bearer)
	if err != nil || !ok {
		return nil, err
	}
	return s.svc.Authenticate(r.Context(), tok)
}

// requireUser is for handlers that need a caller.
func (s *Server) requireUser(r *http.Request) (*modellab.User, error) {
	u, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, modellab.Errorf(modellab.EUNAUTHORIZED, "authentication required: send Authorization: Bearer <token>")
	}
	return u, nil
}

func (s *Server) requireAdmin(r *http.Request) (*modellab.User, error) {
	u, err := s.requireUser(r)
	if err != nil {
		return nil, err
	}
	if !u.Admin {
		return nil, modellab.Errorf(modellab.EFORBIDDEN, "admin only")
	}
	return u, nil
}
