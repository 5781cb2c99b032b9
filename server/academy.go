package server

import (
	"net/http"
)

// hdrVaryEncoding is the Vary of public answers that do not depend on who
// asks: only the encoding changes the bytes, so shared caches may keep one
// copy for everyone.
var hdrVaryEncoding = []string{"Accept-Encoding"}

// handleAcademyCourses and handleAcademyLesson answer public content: they
// do not look at credentials at all, so the answer cannot vary by user.
func (s *Server) handleAcademyCourses(w http.ResponseWriter, r *http.Request) error {
	a, err := s.svc.AcademyCourses(r.Context())
	if err != nil {
		return err
	}
	w.Header()["Vary"] = hdrVaryEncoding
	writeCached(w, r, &a, true)
	return nil
}

func (s *Server) handleAcademyLesson(w http.ResponseWriter, r *http.Request) error {
	a, err := s.svc.AcademyLesson(r.Context(), r.PathValue("slug"))
	if err != nil {
		return err
	}
	w.Header()["Vary"] = hdrVaryEncoding
	writeCached(w, r, &a, true)
	return nil
}

func (s *Server) handleAcademyProgress(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	a, err := s.svc.AcademyProgress(r.Context(), u)
	if err != nil {
		return err
	}
	writeCached(w, r, &a, false)
	return nil
}

// handleCompleteLesson is idempotent: completing a lesson again answers the
// same progress. It takes no body.
func (s *Server) handleCompleteLesson(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	p, err := s.svc.CompleteLesson(r.Context(), u, r.PathValue("slug"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
