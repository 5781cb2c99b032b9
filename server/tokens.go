package server

import (
	"math"
	"net/http"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	list, err := s.svc.ListTokens(r.Context(), u)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
	return nil
}

type createTokenBody struct {
	Name string `json:"name"`
	// ExpiresInHours is absent or null for a token that never expires.
	ExpiresInHours *float64 `json:"expires_in_hours"`
}

// expiresIn converts expires_in_hours; NaN and infinities cannot come out
// of encoding/json, but a number too large for a Duration can.
func (b *createTokenBody) expiresIn() (time.Duration, error) {
	if b.ExpiresInHours == nil {
		return 0, nil
	}
	h := *b.ExpiresInHours
	maxH := float64(modellab.MaxTokenLifetime / time.Hour)
	if !(h > 0) || h > maxH || math.IsInf(h, 0) {
		return 0, modellab.FieldErrorf("expires_in_hours",
			"expires_in_hours must be a positive number of hours up to %d", int64(maxH))
	}
	return max(time.Duration(h*float64(time.Hour)), time.Second), nil
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in createTokenBody
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	ttl, err := in.expiresIn()
	if err != nil {
		return err
	}
	t, secret, err := s.svc.CreateToken(r.Context(), u, service.TokenSpec{Name: in.Name, ExpiresIn: ttl})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": secret})
	return nil
}

func (s *Server) handleDeleteToken(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	if err := s.svc.RevokeToken(r.Context(), u, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
