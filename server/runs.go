package server

import (
	"bytes"
	"io"
	"net/http"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

func (s *Server) handleListRuns(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	a, err := s.svc.RunsList(r.Context(), u)
	if err != nil {
		return err
	}
	writeCached(w, r, &a, false)
	return nil
}

func (s *Server) handleCreateRun(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in service.CreateRunInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	run, err := s.svc.CreateRun(r.Context(), u, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/runs/"+run.ID)
	writeJSON(w, http.StatusCreated, run)
	return nil
}

func (s *Server) handleGetRun(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	run, err := s.svc.GetRun(r.Context(), u, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (s *Server) handlePatchRun(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var p modellab.RunPatch
	if err := decodeJSON(r, &p); err != nil {
		return err
	}
	run, err := s.svc.UpdateRun(r.Context(), u, r.PathValue("id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (s *Server) handleDeleteRun(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteRun(r.Context(), u, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type metricsBody struct {
	Points []service.MetricInput `json:"points"`
}

func (s *Server) handleIngestMetrics(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in metricsBody
	if err := decodeMetrics(r, &in); err != nil {
		return err
	}
	n, err := s.svc.IngestMetrics(r.Context(), u, r.PathValue("id"), in.Points)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": n})
	return nil
}

// decodeMetrics is decodeJSON, except that a body that fails only on the
// bare words NaN, Infinity or -Infinity (which some encoders write for
// non-finite floats) is read again with those quoted, so that the answer
// names the point that holds one instead of a byte offset.
func decodeMetrics(r *http.Request, dst *metricsBody) error {
	if r.Body == nil {
		return modellab.Errorf(modellab.EINVALID, "request body is empty")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	err = decodeBody(body, dst)
	if err == nil || !bytes.Contains(body, []byte("NaN")) && !bytes.Contains(body, []byte("Infinity")) {
		return err
	}
	quoted, ok := quoteNonFinite(body)
	if !ok {
		return err
	}
	*dst = metricsBody{}
	if decodeBody(quoted, dst) == nil {
		return nil
	}
	return err
}

var nonFiniteWords = [][]byte{[]byte("-Infinity"), []byte("Infinity"), []byte("NaN")}

// quoteNonFinite puts quotes around the bare words NaN, Infinity and
// -Infinity outside strings; ok is false when there were none.
func quoteNonFinite(b []byte) (out []byte, ok bool) {
	out = make([]byte, 0, len(b)+16)
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		default:
			if w := nonFiniteAt(b[i:]); w != nil {
				out = append(append(append(out, '"'), w...), '"')
				i += len(w) - 1
				ok = true
				continue
			}
		}
		out = append(out, c)
	}
	return out, ok
}

func nonFiniteAt(b []byte) []byte {
	for _, w := range nonFiniteWords {
		if bytes.HasPrefix(b, w) {
			return w
		}
	}
	return nil
}

func (s *Server) handleRunMetrics(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	q, err := service.ParseMetricQuery(r.URL.Query())
	if err != nil {
		return err
	}
	a, err := s.svc.RunMetrics(r.Context(), u, r.PathValue("id"), q)
	if err != nil {
		return err
	}
	writeCached(w, r, &a, false)
	return nil
}
