package server

import (
	"net/http"
	"strings"

	"github.com/modellab/modellab"
)

// Register mounts every route of the JSON API on mux, in one place.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/users", s.api(s.handleCreateUser))
	mux.HandleFunc("GET /api/tokens", s.api(s.handleListTokens))
	mux.HandleFunc("POST /api/tokens", s.api(s.handleCreateToken))
	mux.HandleFunc("DELETE /api/tokens/{id}", s.api(s.handleDeleteToken))

	mux.HandleFunc("GET /api/models", s.api(s.handleListModels))
	mux.HandleFunc("POST /api/models", s.api(s.handleCreateModel))
	mux.HandleFunc("GET /api/models/{id}", s.api(s.handleGetModel))
	mux.HandleFunc("PATCH /api/models/{id}", s.api(s.handlePatchModel))
	mux.HandleFunc("DELETE /api/models/{id}", s.api(s.handleDeleteModel))

	mux.HandleFunc("GET /api/servers/status", s.api(s.handleServersStatus))
	mux.HandleFunc("POST /api/servers", s.api(s.handleCreateServer))
	mux.HandleFunc("GET /api/servers/{id}", s.api(s.handleGetServer))
	mux.HandleFunc("PATCH /api/servers/{id}", s.api(s.handlePatchServer))
	mux.HandleFunc("DELETE /api/servers/{id}", s.api(s.handleDeleteServer))

	mux.HandleFunc("POST /api/analytics/events", s.api(s.handleIngestEvents))
	mux.HandleFunc("GET /api/analytics/data", s.api(s.handleAnalytics))

	mux.HandleFunc("GET /api/academy/courses", s.api(s.handleAcademyCourses))
	mux.HandleFunc("GET /api/academy/lessons/{slug}", s.api(s.handleAcademyLesson))
	mux.HandleFunc("POST /api/academy/lessons/{slug}/complete", s.api(s.handleCompleteLesson))
	mux.HandleFunc("GET /api/academy/progress", s.api(s.handleAcademyProgress))
	mux.HandleFunc("GET /api/runs", s.api(s.handleListRuns))
	mux.HandleFunc("POST /api/runs", s.api(s.handleCreateRun))
	mux.HandleFunc("GET /api/runs/{id}", s.api(s.handleGetRun))
	mux.HandleFunc("PATCH /api/runs/{id}", s.api(s.handlePatchRun))
	mux.HandleFunc("DELETE /api/runs/{id}", s.api(s.handleDeleteRun))
	mux.HandleFunc("POST /api/runs/{id}/metrics", s.api(s.handleIngestMetrics))
	mux.HandleFunc("GET /api/runs/{id}/metrics", s.api(s.handleRunMetrics))
	mux.HandleFunc("GET /v1/models", s.v1(s.handleV1Models))
	mux.HandleFunc("POST /v1/chat/completions", s.v1(s.handleChatCompletions))
	mux.HandleFunc(v1CatchAll, s.v1Fallback(mux))
	mux.HandleFunc("GET /api/conversations", s.api(s.handleListConversations))
	mux.HandleFunc("POST /api/conversations", s.api(s.handleCreateConversation))
	mux.HandleFunc("GET /api/conversations/{id}", s.api(s.handleGetConversation))
	mux.HandleFunc("DELETE /api/conversations/{id}", s.api(s.handleDeleteConversation))
	mux.HandleFunc("POST /api/conversations/{id}/messages", s.api(s.handleSendMessage))

	mux.HandleFunc("GET /api/cache/stats", s.api(s.handleCacheStats))
	mux.HandleFunc("POST /api/cache/invalidate", s.api(s.handleCacheInvalidate))

	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", s.metrics.Handler())
}

// fallback answers what no route matched.
func (s *Server) fallback(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeErrorStatus(w, r, http.StatusMethodNotAllowed,
				modellab.Errorf(modellab.EINVALID, "method %s is not allowed here; use %s", r.Method, strings.Join(allow, ", ")))
			return
		}
		s.handleNotFound(w, r)
	}
}

// allowedMethods lists the methods mux routes r's path under, for the
// Allow header of a 405: a GET route answers HEAD too (net/http's mux
// routes HEAD to it), so HEAD follows GET.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "" && pattern != "/" && pattern != v1CatchAll {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	return allow
}
