package server

import "time"

// Helpers the HTML pages (package web) need from the server. They are kept
// apart from the API code so that the pages' needs stay visible.

// Now returns the server's clock (Config.Now), so that pages render times
// and default ranges exactly as the API computes them (and deterministically
// in tests).
func (s *Server) Now() time.Time { return s.now() }
