package modellab

import (
	"errors"
	"math"
	"time"
)

// Limits of training runs and their metrics.
const (
	PrefixRun = "run_"

	MaxMetricKeyLen   = 100
	MaxPointsPerBatch = 10_000
	// MaxStep keeps steps exact in every JSON client (2^53 - 1, the
	// largest integer a float64 holds exactly).
	MaxStep = 1<<53 - 1

	MaxParams        = 100
	MaxParamKeyLen   = 100
	MaxParamValueLen = 1000

	// Bounds of max_points, the per-series size of a history read.
	MinMaxPoints     = 2
	MaxMaxPoints     = 5000
	DefaultMaxPoints = 1000
	// MaxMetricKeysPerQuery bounds the keys= list of a history read.
	MaxMetricKeysPerQuery = 50
)

// Run statuses. A run starts running and ends in one of the others.
const (
	RunRunning  = "running"
	RunFinished = "finished"
	RunFailed   = "failed"
	RunKilled   = "killed"
)

// ValidRunStatus reports whether s is a run status.
func ValidRunStatus(s string) bool {
	switch s {
	case RunRunning, RunFinished, RunFailed, RunKilled:
		return true
	}
	return false
}

// Run is one training run of a user: its parameters, its status and a
// summary of its metrics (the last step seen and the value at the highest
// step of every key), kept current by every ingest.
type Run struct {
	ID        string             `json:"id"`
	Name      string             `json:"name"`
	ModelID   *string            `json:"model_id"`
	OwnerID   string             `json:"owner_id"`
	Status    string             `json:"status"`
	Params    map[string]any     `json:"params"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
	EndedAt   *time.Time         `json:"ended_at"`
	LastStep  *int64             `json:"last_step"`
	Latest    map[string]float64 `json:"latest"`
}

// Valid checks a run's fields (not the caller's rights).
func (r *Run) Valid() error {
	if err := validText("name", r.Name, 1, MaxNameLen); err != nil {
		return err
	}
	if !ValidRunStatus(r.Status) {
		return FieldErrorf("status", "status must be one of running, finished, failed, killed")
	}
	if r.OwnerID == "" {
		return Errorf(EINVALID, "a run needs an owner")
	}
	return ValidParams(r.Params)
}

// ValidParams checks a run's parameters: at most MaxParams of them, each
// value a string, a finite number or a boolean.
func ValidParams(p map[string]any) error {
	if len(p) > MaxParams {
		return FieldErrorf("params", "params may hold at most %d entries", MaxParams)
	}
	for k, v := range p {
		field := "params." + k
		if validText(field, k, 1, MaxParamKeyLen) != nil {
			return FieldErrorf("params", "params names must be 1 to %d characters without control characters", MaxParamKeyLen)
		}
		switch x := v.(type) {
		case string:
			if err := validText(field, x, 0, MaxParamValueLen); err != nil {
				return err
			}
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return FieldErrorf(field, "%s must be a finite number", field)
			}
		case bool:
		default:
			return FieldErrorf(field, "%s must be a string, a number or a boolean", field)
		}
	}
	return nil
}

// Ended reports whether the run has left the running state.
func (r *Run) Ended() bool { return r.Status != RunRunning }

// RunPatch is a partial update of a run: its name and its status.
type RunPatch struct {
	Name   Optional[string] `json:"name"`
	Status Optional[string] `json:"status"`
}

// Valid rejects nulls and unknown statuses.
func (p *RunPatch) Valid() error {
	if err := errors.Join(notNull("name", p.Name.Null), notNull("status", p.Status.Null)); err != nil {
		return err
	}
	if p.Status.Set && !ValidRunStatus(p.Status.Value) {
		return FieldErrorf("status", "status must be one of running, finished, failed, killed")
	}
	return nil
}

// Apply returns r with p applied at time now: a run that leaves running
// records when it ended; one that is resumed loses its end.
func (p *RunPatch) Apply(r Run, now time.Time) Run {
	p.Name.apply(&r.Name)
	if p.Status.Set && p.Status.Value != r.Status {
		switch {
		case p.Status.Value == RunRunning:
			r.EndedAt = nil
		case r.Status == RunRunning:
			t := now
			r.EndedAt = &t
		}
		r.Status = p.Status.Value
	}
	return r
}

// MetricPoint is one value of one metric of a run at one step. A second
// point for the same key and step replaces the first.
type MetricPoint struct {
	Key       string
	Step      int64
	Value     float64
	Timestamp time.Time
}

// ValidMetricKey reports whether k matches [A-Za-z0-9_./-]{1,100}.
func ValidMetricKey(k string) bool {
	if len(k) < 1 || len(k) > MaxMetricKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}

// Valid checks a point; now bounds timestamps from the future. Errors name
// the field of the point ("key", "step", "value", "timestamp").
func (p *MetricPoint) Valid(now time.Time) error {
	if !ValidMetricKey(p.Key) {
		return FieldErrorf("key", "key must be 1 to %d characters of A-Z a-z 0-9 _ . / -", MaxMetricKeyLen)
	}
	if p.Step < 0 || p.Step > MaxStep {
		return FieldErrorf("step", "step must be a non-negative integer up to %d", int64(MaxStep))
	}
	if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
		return FieldErrorf("value", "value must be a finite number, not %s", fmtNonFinite(p.Value))
	}
	if p.Timestamp.Before(time.Unix(0, 0)) || p.Timestamp.After(now.Add(24*time.Hour)) {
		return FieldErrorf("timestamp", "timestamp must be between 1970 and one day from now")
	}
	return nil
}

func fmtNonFinite(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case v > 0:
		return "Infinity"
	}
	return "-Infinity"
}

// MetricSample is one point of a series read back.
type MetricSample struct {
	Step      int64     `json:"step"`
	Value     float64   `json:"value"`
	Timestamp UnixMicro `json:"timestamp"`
}

// UnixMicro is an instant in unix microseconds, the precision points are
// stored with, and reads as RFC 3339 in UTC in JSON like every time of the
// API. A history holds a hundred thousand of them: unlike time.Time they
// hold no pointer, so the garbage collector never scans a series.
type UnixMicro int64

// Micros returns t as a UnixMicro.
func Micros(t time.Time) UnixMicro { return UnixMicro(t.UnixMicro()) }

// Time returns the instant in UTC.
func (u UnixMicro) Time() time.Time { return time.UnixMicro(int64(u)).UTC() }

// MarshalJSON writes the instant as time.Time does.
func (u UnixMicro) MarshalJSON() ([]byte, error) { return u.Time().MarshalJSON() }

// UnmarshalJSON reads an RFC 3339 time.
func (u *UnixMicro) UnmarshalJSON(b []byte) error {
	var t time.Time
	if err := t.UnmarshalJSON(b); err != nil {
		return err
	}
	*u = Micros(t)
	return nil
}

// MetricSeries is the history of one key, sorted by step.
type MetricSeries struct {
	Key    string         `json:"key"`
	Points []MetricSample `json:"points"`
}

// MetricQuery selects a run's history: the keys (all when empty, else
// sorted and distinct), the points after AfterStep (-1: all), at most
// MaxPoints per series.
type MetricQuery struct {
	Keys      []string
	AfterStep int64
	MaxPoints int
}

// Valid checks the query's bounds.
func (q *MetricQuery) Valid() error {
	if len(q.Keys) > MaxMetricKeysPerQuery {
		return FieldErrorf("keys", "keys may name at most %d metrics", MaxMetricKeysPerQuery)
	}
	for _, k := range q.Keys {
		if !ValidMetricKey(k) {
			return FieldErrorf("keys", "keys must be metric names of A-Z a-z 0-9 _ . / - separated by commas")
		}
	}
	if q.AfterStep < -1 || q.AfterStep > MaxStep {
		return FieldErrorf("after_step", "after_step must be a non-negative integer")
	}
	if q.MaxPoints < MinMaxPoints || q.MaxPoints > MaxMaxPoints {
		return FieldErrorf("max_points", "max_points must be an integer from %d to %d", MinMaxPoints, MaxMaxPoints)
	}
	return nil
}

// MetricBatch is one ingest: points for a run, checked to belong to
// OwnerID, recorded at At (the run's updated_at).
type MetricBatch struct {
	RunID   string
	OwnerID string
	Points  []MetricPoint
	At      time.Time
}

// RunHistory is a read of a run's metrics: its status, its last step and
// the series selected, each sorted by step.
type RunHistory struct {
	RunID    string         `json:"run_id"`
	OwnerID  string         `json:"-"`
	Status   string         `json:"status"`
	Series   []MetricSeries `json:"series"`
	LastStep *int64         `json:"last_step"`
	// Rewrites counts the ingests into the run that reached back below its
	// last step. While it stays the same, the points below LastStep stay
	// the same: a later read needs only those from LastStep on.
	Rewrites int64 `json:"-"`
}
