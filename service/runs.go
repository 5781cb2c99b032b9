package service

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
)

// RunsList returns the encoded list of u's runs, newest first. Ingest
// invalidates it: the list shows each run's last step and latest values.
func (s *Service) RunsList(ctx context.Context, u *modellab.User) (Answer, error) {
	spec := readSpec{key: keyRunsUser(u.ID), group: GroupRuns, ttl: s.cfg.ServersTTL}
	return answerOf(cachedRead(ctx, s, spec, u.ID, loadRunList))
}

func loadRunList(ctx context.Context, s *Service, ownerID string) (RunList, error) {
	runs, err := s.store.ListRuns(ctx, ownerID)
	return RunList{Runs: nonNil(runs)}, err
}

// runMetricsArg is what a history load needs: who asks, which run, what.
type runMetricsArg struct {
	userID, runID string
	q             modellab.MetricQuery
}

// RunMetrics returns the encoded history of one of u's runs for q (already
// validated): one cache entry per reader, run and canonical query, tagged
// with the run so that an ingest drops all of them. Each series longer
// than q.MaxPoints is downsampled with LTTB.
func (s *Service) RunMetrics(ctx context.Context, u *modellab.User, runID string, q modellab.MetricQuery) (Answer, error) {
	if !modellab.ValidID(runID) {
		return Answer{}, errRunNotFound()
	}
	spec := readSpec{key: keyRunMetrics(u.ID, runID, q), group: GroupRuns, ttl: s.cfg.ServersTTL, tags: []string{tagRun(runID)}}
	return answerOf(cachedRead(ctx, s, spec, runMetricsArg{u.ID, runID, q}, loadRunMetrics))
}

// loadRunMetrics is one statement: the run's head and its points
// together. A full read of a selection that was read before fetches only
// the points after the last one (see tails.go).
func loadRunMetrics(ctx context.Context, s *Service, a runMetricsArg) (modellab.RunHistory, error) {
	h, err := s.history(ctx, a)
	if modellab.ErrorCode(err) == modellab.ENOTFOUND || err == nil && h.OwnerID != a.userID {
		if err != nil && s.tails != nil {
			s.tails.drop(a.runID)
		}
		return modellab.RunHistory{}, errRunNotFound()
	}
	if err != nil {
		return h, err
	}
	series := h.Series
	if len(a.q.Keys) > 0 {
		series = withKeys(series, a.q.Keys)
	}
	// New series: the raw ones may be a tail's, which stays as it is.
	h.Series = make([]modellab.MetricSeries, len(series))
	for i, sr := range series {
		h.Series[i] = modellab.MetricSeries{Key: sr.Key, Points: nonNil(modellab.LTTB(sr.Points, a.q.MaxPoints))}
	}
	return h, nil
}

// history reads the raw points a selects, from the tail of the last read
// when it is still exact.
func (s *Service) history(ctx context.Context, a runMetricsArg) (modellab.RunHistory, error) {
	if a.q.AfterStep >= 0 || s.tails == nil {
		// An incremental read of a client (small already), or no caching.
		return s.store.MetricHistory(ctx, a.runID, a.q)
	}
	old := s.tails.get(a.runID, a.q.Keys)
	q := a.q
	if old != nil {
		q.AfterStep = max(old.lastStep-1, -1) // the last step itself again
	}
	h, err := s.store.MetricHistory(ctx, a.runID, q)
	if err != nil || h.OwnerID != a.userID {
		return h, err
	}
	switch {
	case old != nil && h.Rewrites == old.rewrites:
		h.Series = extend(old.series, h.Series, old.lastStep)
	case old != nil:
		// Points below the last step changed: read them all.
		if h, err = s.store.MetricHistory(ctx, a.runID, a.q); err != nil {
			return h, err
		}
	}
	s.tails.put(a.runID, a.q.Keys, newTail(&h))
	return h, nil
}

// withKeys answers a series for every key asked for, empty when the run
// has no such point yet, so that a client polling a list of keys always
// finds them; keys and series are both sorted.
func withKeys(series []modellab.MetricSeries, keys []string) []modellab.MetricSeries {
	out := make([]modellab.MetricSeries, 0, len(keys))
	i := 0
	for _, k := range keys {
		if i < len(series) && series[i].Key == k {
			out = append(out, series[i])
			i++
			continue
		}
		out = append(out, modellab.MetricSeries{Key: k, Points: []modellab.MetricSample{}})
	}
	return out
}

// ParseMetricQuery reads keys (comma-separated), after_step and max_points.
// Keys are sorted and deduplicated, so that equivalent spellings share one
// cache entry; repeated parameters are rejected rather than guessed at.
func ParseMetricQuery(v url.Values) (modellab.MetricQuery, error) {
	q := modellab.MetricQuery{AfterStep: -1, MaxPoints: modellab.DefaultMaxPoints}
	for _, name := range []string{"keys", "after_step", "max_points"} {
		if len(v[name]) > 1 {
			return q, modellab.FieldErrorf(name, "parameter %s is given more than once", name)
		}
	}
	if s := v.Get("keys"); s != "" {
		for _, k := range strings.Split(s, ",") {
			if k = strings.TrimSpace(k); k != "" {
				q.Keys = append(q.Keys, k)
			}
		}
		slices.Sort(q.Keys)
		q.Keys = slices.Compact(q.Keys)
	}
	if s := v.Get("after_step"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return q, modellab.FieldErrorf("after_step", "after_step must be a non-negative integer")
		}
		q.AfterStep = n
	}
	if s := v.Get("max_points"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, modellab.FieldErrorf("max_points", "max_points must be an integer from %d to %d", modellab.MinMaxPoints, modellab.MaxMaxPoints)
		}
		q.MaxPoints = n
	}
	return q, q.Valid()
}

func errRunNotFound() error { return modellab.Errorf(modellab.ENOTFOUND, "run not found") }

// invalidateRun drops every entry that shows run id of ownerID: its
// histories (one tag for all of them) and the owner's run list.
func (s *Service) invalidateRun(ctx context.Context, ownerID, id string) {
	s.cache.InvalidateTag(ctx, tagRun(id))
	s.cache.Invalidate(ctx, keyRunsUser(ownerID))
}

// CreateRunInput is what a caller sends to start a run.
type CreateRunInput struct {
	Name    string         `json:"name"`
	ModelID *string        `json:"model_id"`
	Params  map[string]any `json:"params"`
}

// CreateRun starts a run for u, in status running.
func (s *Service) CreateRun(ctx context.Context, u *modellab.User, in CreateRunInput) (modellab.Run, error) {
	r := modellab.Run{Name: in.Name, ModelID: in.ModelID, OwnerID: u.ID, Status: modellab.RunRunning, Params: in.Params}
	if r.Params == nil {
		r.Params = map[string]any{}
	}
	if err := r.Valid(); err != nil {
		return r, err
	}
	if err := s.checkServerModel(ctx, u, r.ModelID); err != nil {
		return r, err
	}
	r.ID = modellab.NewID(modellab.PrefixRun)
	r.CreatedAt = s.stamp()
	r.UpdatedAt = r.CreatedAt
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.CreateRun(ctx, &r) }); err != nil {
		return r, err
	}
	s.cache.Invalidate(ctx, keyRunsUser(u.ID))
	return r, nil
}

// ownRun returns run id if it is u's; ENOTFOUND otherwise, so that other
// users' runs do not leak their existence.
func (s *Service) ownRun(ctx context.Context, u *modellab.User, id string) (modellab.Run, error) {
	if !modellab.ValidID(id) {
		return modellab.Run{}, errRunNotFound()
	}
	var r modellab.Run
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		r, err = s.store.GetRun(ctx, id)
		return err
	})
	if modellab.ErrorCode(err) == modellab.ENOTFOUND || err == nil && r.OwnerID != u.ID {
		return modellab.Run{}, errRunNotFound()
	}
	return r, err
}

// GetRun returns one of u's runs.
func (s *Service) GetRun(ctx context.Context, u *modellab.User, id string) (modellab.Run, error) {
	return s.ownRun(ctx, u, id)
}

// UpdateRun renames one of u's runs or changes its status; leaving running
// records ended_at.
func (s *Service) UpdateRun(ctx context.Context, u *modellab.User, id string, p modellab.RunPatch) (modellab.Run, error) {
	if err := p.Valid(); err != nil {
		return modellab.Run{}, err
	}
	old, err := s.ownRun(ctx, u, id)
	if err != nil {
		return old, err
	}
	now := s.stamp()
	r := p.Apply(old, now)
	if err := r.Valid(); err != nil {
		return old, err
	}
	r.UpdatedAt = now
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.UpdateRun(ctx, &r) }); err != nil {
		return old, err
	}
	s.invalidateRun(ctx, u.ID, id)
	return r, nil
}

// DeleteRun removes one of u's runs and its metrics.
func (s *Service) DeleteRun(ctx context.Context, u *modellab.User, id string) error {
	if _, err := s.ownRun(ctx, u, id); err != nil {
		return err
	}
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.DeleteRun(ctx, id) }); err != nil {
		return err
	}
	if s.tails != nil {
		s.tails.drop(id)
	}
	s.invalidateRun(ctx, u.ID, id)
	return nil
}

// MetricInput is one point a caller records. Step and value are decoded
// by hand so that a bad one is reported with its index (points[12].value)
// like every other field, rather than as a type error of the whole body.
type MetricInput struct {
	Key       string      `json:"key"`
	Step      StepInput   `json:"step"`
	Value     NumberInput `json:"value"`
	Timestamp *time.Time  `json:"timestamp"`
}

// NumberInput is a JSON number that remembers what was sent: a number out
// of float64's range is infinite, and "NaN", "Infinity" and "-Infinity"
// (as strings, or as the bare words some encoders write) are what they say,
// so that validation can name the point that carries one.
type NumberInput struct {
	V   float64
	Set bool // present and a number (possibly not finite)
}

// UnmarshalJSON accepts a number, or one of the non-finite spellings.
func (n *NumberInput) UnmarshalJSON(b []byte) error {
	switch s := string(bytes.Trim(b, `"`)); {
	case s == "null":
		*n = NumberInput{}
	case s == "NaN":
		*n = NumberInput{V: math.NaN(), Set: true}
	case s == "Infinity" || s == "+Infinity" || s == "inf":
		*n = NumberInput{V: math.Inf(1), Set: true}
	case s == "-Infinity" || s == "-inf":
		*n = NumberInput{V: math.Inf(-1), Set: true}
	case len(b) > 0 && b[0] == '"':
		*n = NumberInput{V: math.NaN()} // a string that is no number
	default:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && !isRangeErr(err) {
			*n = NumberInput{V: math.NaN()}
			return nil
		}
		*n = NumberInput{V: v, Set: true} // ±Inf when out of range
	}
	return nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// StepInput is a JSON integer, or whatever was sent instead.
type StepInput struct {
	V   int64
	Set bool // present and an integer
}

// UnmarshalJSON accepts an integer (1e3 and 10.0 included); anything else
// is recorded as not set.
func (n *StepInput) UnmarshalJSON(b []byte) error {
	*n = StepInput{}
	if len(b) == 0 || b[0] == '"' || string(b) == "null" {
		return nil
	}
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*n = StepInput{V: v, Set: true}
		return nil
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil && f == math.Trunc(f) && math.Abs(f) <= modellab.MaxStep {
		*n = StepInput{V: int64(f), Set: true}
	}
	return nil
}

// IngestMetrics validates every point, then stores all of them or none
// into one of u's runs, and drops the run's cached entries.
func (s *Service) IngestMetrics(ctx context.Context, u *modellab.User, runID string, in []MetricInput) (int, error) {
	if len(in) == 0 || len(in) > modellab.MaxPointsPerBatch {
		return 0, modellab.FieldErrorf("points", "points must hold 1 to %d points", modellab.MaxPointsPerBatch)
	}
	if !modellab.ValidID(runID) {
		return 0, errRunNotFound()
	}
	points, err := s.toPoints(in)
	if err != nil {
		return 0, err
	}
	b := modellab.MetricBatch{RunID: runID, OwnerID: u.ID, Points: points, At: s.stamp()}
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.IngestMetrics(ctx, b) }); err != nil {
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return 0, errRunNotFound()
		}
		return 0, err
	}
	s.invalidateRun(ctx, u.ID, runID)
	return len(points), nil
}

func (s *Service) toPoints(in []MetricInput) ([]modellab.MetricPoint, error) {
	now := s.now().UTC()
	stamp := now.Truncate(time.Microsecond)
	points := make([]modellab.MetricPoint, len(in))
	for i := range in {
		m := &in[i]
		switch {
		case !m.Step.Set:
			return nil, pointError(i, "step", "step must be a non-negative integer")
		case !m.Value.Set:
			return nil, pointError(i, "value", "value must be a finite number")
		}
		p := modellab.MetricPoint{Key: m.Key, Step: m.Step.V, Value: m.Value.V, Timestamp: stamp}
		if m.Timestamp != nil {
			p.Timestamp = m.Timestamp.UTC().Truncate(time.Microsecond)
		}
		if err := p.Valid(now); err != nil {
			return nil, pointError(i, modellab.ErrorField(err), modellab.ErrorMessage(err))
		}
		points[i] = p
	}
	return points, nil
}

// pointError names the point and its field in the message and the error's
// field: points[12].value.
func pointError(i int, field, msg string) error {
	name := fmt.Sprintf("points[%d].%s", i, field)
	return modellab.FieldErrorf(name, "%s: %s", name, msg)
}
