package server

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// apiHandler is a handler that returns an error instead of writing it, so
// every failure goes through writeError's one table.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *Server) handleListModels(w http.ResponseWriter, r *http.Request) error {
	u, err := s.authenticate(r)
	if err != nil {
		return err
	}
	var cursor []byte
	var limit int
	paged := false
	if r.URL.RawQuery != "" { // the hit path parses nothing
		if cursor, limit, paged, err = pageParams(r.URL.Query()); err != nil {
			return err
		}
	}
	var a service.Answer
	if paged {
		a, err = s.svc.ModelsListPage(r.Context(), u, cursor, limit)
	} else {
		a, err = s.svc.ModelsList(r.Context(), u)
	}
	if err != nil {
		return err
	}
	defer a.Release()
	writeCached(w, r, &a, u == nil)
	return nil
}

// pageParams reads the paging parameters of the model list.
func pageParams(qv url.Values) (cursor []byte, limit int, paged bool, err error) {
	for _, k := range []string{"limit", "page_token"} {
		if len(qv[k]) > 1 {
			return nil, 0, false, modellab.FieldErrorf(k, "parameter %s is given more than once", k)
		}
	}
	return service.ParsePage(qv.Get("limit"), qv.Get("page_token"))
}

func (s *Server) handleGetModel(w http.ResponseWriter, r *http.Request) error {
	u, err := s.authenticate(r)
	if err != nil {
		return err
	}
	m, err := s.svc.GetModel(r.Context(), u, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) handleCreateModel(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in service.CreateModelInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	m, err := s.svc.CreateModel(r.Context(), u, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/models/"+m.ID)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (s *Server) handlePatchModel(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var p modellab.ModelPatch
	if err := decodeJSON(r, &p); err != nil {
		return err
	}
	m, err := s.svc.UpdateModel(r.Context(), u, r.PathValue("id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) handleDeleteModel(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteModel(r.Context(), u, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleServersStatus(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	a, err := s.svc.ServersStatus(r.Context(), u)
	if err != nil {
		return err
	}
	defer a.Release()
	writeCached(w, r, &a, false)
	return nil
}

func (s *Server) handleGetServer(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	sv, err := s.svc.GetServer(r.Context(), u, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sv)
	return nil
}

func (s *Server) handleCreateServer(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in service.CreateServerInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	sv, err := s.svc.CreateServer(r.Context(), u, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/servers/"+sv.ID)
	writeJSON(w, http.StatusCreated, sv)
	return nil
}

func (s *Server) handlePatchServer(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var p modellab.ServerPatch
	if err := decodeJSON(r, &p); err != nil {
		return err
	}
	sv, err := s.svc.UpdateServer(r.Context(), u, r.PathValue("id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sv)
	return nil
}

func (s *Server) handleDeleteServer(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteServer(r.Context(), u, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type eventsBody struct {
	Events []service.EventInput `json:"events"`
}

func (s *Server) handleIngestEvents(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in eventsBody
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	n, err := s.svc.IngestEvents(r.Context(), u, in.Events)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": n})
	return nil
}

func (s *Server) handleAnalytics(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	q, err := service.ParseAnalyticsQuery(r.URL.Query(), s.svc.Now())
	if err != nil {
		return err
	}
	a, err := s.svc.AnalyticsData(r.Context(), u, q)
	if err != nil {
		return err
	}
	defer a.Release()
	writeCached(w, r, &a, false)
	return nil
}

type createUserBody struct {
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) error {
	actor, err := s.requireAdmin(r)
	if err != nil {
		return err
	}
	var in createUserBody
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	u, tok, err := s.svc.CreateUser(r.Context(), actor, in.Name, in.Admin)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": u, "token": tok})
	return nil
}

func (s *Server) handleCacheStats(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.requireAdmin(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.cache.Stats())
	return nil
}

type invalidateBody struct {
	Pattern string `json:"pattern"`
	Tag     string `json:"tag"`
	Key     string `json:"key"`
}

func (s *Server) handleCacheInvalidate(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.requireAdmin(r); err != nil {
		return err
	}
	var in invalidateBody
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	n, err := s.svc.Purge(r.Context(), service.Purge{Pattern: in.Pattern, Tag: in.Tag, Key: in.Key})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"invalidated": n})
	return nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readyBody struct {
	Database string     `json:"database"`
	Cache    readyCache `json:"cache"`
	// ShuttingDown is set after SIGTERM: the instance is about to drain.
	ShuttingDown bool `json:"shutting_down,omitempty"`
}

type readyCache struct {
	Mode  string `json:"mode"`
	Redis string `json:"redis"`
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := readyBody{Database: "ok", Cache: readyCache{Mode: s.cache.Mode(), Redis: s.cache.RedisState()}}
	status := http.StatusOK
	if err := s.svc.Ping(ctx); err != nil {
		body.Database = "down"
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	if s.shuttingDown.Load() {
		body.ShuttingDown = true
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, body)
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, modellab.Errorf(modellab.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
}
