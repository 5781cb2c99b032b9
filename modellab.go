// Package modellab holds the domain of the model lab: users, language models,
// inference servers, usage events and training runs, their validation rules
// and the error type shared by every layer. It depends on the standard library only;
// implementations (store, cache, server) live in their own packages.
package modellab

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the domain. They are enforced by Valid methods so that every
// entry point (API, pages, seed) applies the same rules.
const (
	MaxNameLen        = 200
	MaxProviderLen    = 100
	MaxBaseModelLen   = 200
	MaxDescriptionLen = 10000
	MaxEndpointLen    = 2000
	MaxGPULen         = 100
	MaxContextLength  = 1<<31 - 1
	MaxTokens         = 1 << 40
	MaxLatencyMS      = 24 * 60 * 60 * 1000
	MaxCostUSD        = 1e6
	MaxEventsPerBatch = 1000
	MaxAnalyticsRange = 366 * 24 * time.Hour
)

// User is an account. Its API tokens are stored hashed.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

// Valid checks a user about to be created.
func (u *User) Valid() error {
	return validText("name", u.Name, 1, MaxNameLen)
}

// Visibility of a model.
const (
	VisibilityGlobal  = "global"
	VisibilityPrivate = "private"
)

// Model is a registered language model. Global models have no owner and are
// visible to everyone; private ones only to their owner.
type Model struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Provider      string    `json:"provider"`
	BaseModel     string    `json:"base_model"`
	Description   string    `json:"description"`
	ContextLength *int64    `json:"context_length"`
	Visibility    string    `json:"visibility"`
	OwnerID       *string   `json:"owner_id"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Valid checks a model's fields (not the caller's rights).
func (m *Model) Valid() error {
	if err := validText("name", m.Name, 1, MaxNameLen); err != nil {
		return err
	}
	if err := validText("provider", m.Provider, 1, MaxProviderLen); err != nil {
		return err
	}
	if err := validText("base_model", m.BaseModel, 0, MaxBaseModelLen); err != nil {
		return err
	}
	if err := validMultiline("description", m.Description, MaxDescriptionLen); err != nil {
		return err
	}
	if m.ContextLength != nil && (*m.ContextLength < 1 || *m.ContextLength > MaxContextLength) {
		return FieldErrorf("context_length", "context_length must be a positive integer up to %d", int64(MaxContextLength))
	}
	switch m.Visibility {
	case VisibilityGlobal:
		if m.OwnerID != nil {
			return Errorf(EINVALID, "a global model has no owner")
		}
	case VisibilityPrivate:
		if m.OwnerID == nil || *m.OwnerID == "" {
			return Errorf(EINVALID, "a private model needs an owner")
		}
	default:
		return FieldErrorf("visibility", "visibility must be %q or %q", VisibilityGlobal, VisibilityPrivate)
	}
	return nil
}

// VisibleTo reports whether user u (nil for anonymous) may see m.
func (m *Model) VisibleTo(u *User) bool {
	if m.Visibility == VisibilityGlobal {
		return true
	}
	return u != nil && m.OwnerID != nil && *m.OwnerID == u.ID
}

// EditableBy reports whether u may change or delete m. It assumes VisibleTo.
func (m *Model) EditableBy(u *User) bool {
	if u == nil {
		return false
	}
	if m.Visibility == VisibilityGlobal {
		return u.Admin
	}
	return m.OwnerID != nil && *m.OwnerID == u.ID
}

// Optional is one field of a partial update. Set is true when the field was
// present in the JSON body, Null when it was present as null, so that a
// client can clear a nullable field and leave the others alone.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON records presence; encoding/json calls it for null too.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		var zero T
		o.Value = zero
		return nil
	}
	o.Null = false
	return json.Unmarshal(b, &o.Value)
}

// apply assigns the sent value to *dst; a field not sent is left alone.
func (o Optional[T]) apply(dst *T) {
	if o.Set {
		*dst = o.Value
	}
}

// applyNullable is apply for a nullable field: an explicit null clears it.
func (o Optional[T]) applyNullable(dst **T) {
	switch {
	case !o.Set:
	case o.Null:
		*dst = nil
	default:
		v := o.Value
		*dst = &v
	}
}

// Some returns a set, non-null Optional.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: v} }

func notNull(field string, null bool) error {
	if null {
		return FieldErrorf(field, "%s must not be null", field)
	}
	return nil
}

// ModelPatch is a partial update of a model: fields not Set are left alone.
type ModelPatch struct {
	Name          Optional[string] `json:"name"`
	Provider      Optional[string] `json:"provider"`
	BaseModel     Optional[string] `json:"base_model"`
	Description   Optional[string] `json:"description"`
	ContextLength Optional[int64]  `json:"context_length"`
	Visibility    Optional[string] `json:"visibility"`
}

// Valid rejects nulls where the field cannot be cleared.
func (p *ModelPatch) Valid() error {
	return errors.Join(notNull("name", p.Name.Null), notNull("provider", p.Provider.Null),
		notNull("visibility", p.Visibility.Null))
}

// Apply returns m with p applied. Ownership follows visibility: a model made
// global loses its owner, a global model made private is owned by actor.
func (p *ModelPatch) Apply(m Model, actor *User) Model {
	p.Name.apply(&m.Name)
	p.Provider.apply(&m.Provider)
	p.BaseModel.apply(&m.BaseModel)
	p.Description.apply(&m.Description)
	p.ContextLength.applyNullable(&m.ContextLength)
	if p.Visibility.Set && p.Visibility.Value != m.Visibility {
		m.Visibility = p.Visibility.Value
		switch m.Visibility {
		case VisibilityGlobal:
			m.OwnerID = nil
		case VisibilityPrivate:
			if actor != nil {
				id := actor.ID
				m.OwnerID = &id
			}
		}
	}
	return m
}

// Server statuses.
const (
	StatusStarting = "starting"
	StatusRunning  = "running"
	StatusStopped  = "stopped"
	StatusError    = "error"
)

// Server is an inference server run by a user for a model. ModelID becomes
// nil when the model is deleted.
type Server struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	ModelID       *string    `json:"model_id"`
	Status        string     `json:"status"`
	Endpoint      string     `json:"endpoint"`
	GPU           string     `json:"gpu"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	OwnerID       string     `json:"-"`
}

// ValidStatus reports whether s is a server status.
func ValidStatus(s string) bool {
	switch s {
	case StatusStarting, StatusRunning, StatusStopped, StatusError:
		return true
	}
	return false
}

// Valid checks a server's fields.
func (s *Server) Valid() error {
	if err := validText("name", s.Name, 1, MaxNameLen); err != nil {
		return err
	}
	if !ValidStatus(s.Status) {
		return FieldErrorf("status", "status must be one of starting, running, stopped, error")
	}
	if err := validText("endpoint", s.Endpoint, 0, MaxEndpointLen); err != nil {
		return err
	}
	if err := validText("gpu", s.GPU, 0, MaxGPULen); err != nil {
		return err
	}
	if s.OwnerID == "" {
		return Errorf(EINVALID, "a server needs an owner")
	}
	return nil
}

// ServerPatch is a partial update of a server; model_id and last_heartbeat
// may be cleared with null.
type ServerPatch struct {
	Name          Optional[string]    `json:"name"`
	ModelID       Optional[string]    `json:"model_id"`
	Status        Optional[string]    `json:"status"`
	Endpoint      Optional[string]    `json:"endpoint"`
	GPU           Optional[string]    `json:"gpu"`
	LastHeartbeat Optional[time.Time] `json:"last_heartbeat"`
}

// Valid rejects nulls where the field cannot be cleared.
func (p *ServerPatch) Valid() error {
	return errors.Join(notNull("name", p.Name.Null), notNull("status", p.Status.Null),
		notNull("endpoint", p.Endpoint.Null), notNull("gpu", p.GPU.Null))
}

// Apply returns s with p applied.
func (p *ServerPatch) Apply(s Server) Server {
	p.Name.apply(&s.Name)
	p.ModelID.applyNullable(&s.ModelID)
	p.Status.apply(&s.Status)
	p.Endpoint.apply(&s.Endpoint)
	p.GPU.apply(&s.GPU)
	p.LastHeartbeat.applyNullable(&s.LastHeartbeat)
	if s.LastHeartbeat != nil && p.LastHeartbeat.Set {
		// Stored with microsecond precision in UTC, answered the same way.
		t := s.LastHeartbeat.UTC().Truncate(time.Microsecond)
		s.LastHeartbeat = &t
	}
	return s
}

// Event statuses.
const (
	EventOK    = "ok"
	EventError = "error"
)

// Event is one inference request recorded for analytics.
type Event struct {
	UserID       string    `json:"-"`
	ModelID      string    `json:"model_id"`
	Timestamp    time.Time `json:"timestamp"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	LatencyMS    float64   `json:"latency_ms"`
	Status       string    `json:"status"`
	CostUSD      float64   `json:"cost_usd"`
}

// Valid checks an event; now bounds timestamps from the future.
func (e *Event) Valid(now time.Time) error {
	if e.ModelID == "" {
		return FieldErrorf("model_id", "model_id is required")
	}
	if e.Timestamp.IsZero() || e.Timestamp.Before(time.Unix(0, 0)) || e.Timestamp.After(now.Add(24*time.Hour)) {
		return FieldErrorf("timestamp", "timestamp must be between 1970 and one day from now")
	}
	if e.InputTokens < 0 || e.InputTokens > MaxTokens || e.OutputTokens < 0 || e.OutputTokens > MaxTokens {
		return FieldErrorf("input_tokens", "input_tokens and output_tokens must be non-negative integers up to %d", int64(MaxTokens))
	}
	if !(e.LatencyMS >= 0 && e.LatencyMS <= MaxLatencyMS) { // also rejects NaN
		return FieldErrorf("latency_ms", "latency_ms must be between 0 and %d", MaxLatencyMS)
	}
	if e.Status != EventOK && e.Status != EventError {
		return FieldErrorf("status", "status must be %q or %q", EventOK, EventError)
	}
	if !(e.CostUSD >= 0 && e.CostUSD <= MaxCostUSD) {
		return FieldErrorf("cost_usd", "cost_usd must be between 0 and %g", MaxCostUSD)
	}
	return nil
}

// Analytics intervals.
const (
	IntervalHour = "hour"
	IntervalDay  = "day"
)

// AnalyticsQuery selects a user's events: [From, To), bucketed by Interval,
// optionally for one model.
type AnalyticsQuery struct {
	From     time.Time
	To       time.Time
	Interval string
	ModelID  string
}

// Step returns the bucket width of the interval.
func (q *AnalyticsQuery) Step() time.Duration {
	if q.Interval == IntervalHour {
		return time.Hour
	}
	return 24 * time.Hour
}

// Valid checks the query's bounds.
func (q *AnalyticsQuery) Valid() error {
	if q.Interval != IntervalHour && q.Interval != IntervalDay {
		return FieldErrorf("interval", "interval must be %q or %q", IntervalHour, IntervalDay)
	}
	if !q.From.Before(q.To) {
		return FieldErrorf("from", "from must be before to")
	}
	if q.To.Sub(q.From) > MaxAnalyticsRange {
		return FieldErrorf("to", "the range may span at most 366 days")
	}
	if q.ModelID != "" && !ValidID(q.ModelID) {
		return FieldErrorf("model_id", "model_id is not a valid id")
	}
	return nil
}

// AnalyticsTotals aggregates all selected events. Latencies are in ms;
// P95LatencyMS is the nearest-rank 95th percentile.
type AnalyticsTotals struct {
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
	P95LatencyMS float64 `json:"p95_latency_ms"`
}

// ModelUsage aggregates the selected events of one model.
type ModelUsage struct {
	ModelID      string  `json:"model_id"`
	ModelName    string  `json:"model_name"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	AvgLatencyMS float64 `json:"avg_latency_ms"`
}

// SeriesPoint is one bucket of the time series; Tokens is input + output.
type SeriesPoint struct {
	T            time.Time `json:"t"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	Tokens       int64     `json:"tokens"`
	AvgLatencyMS float64   `json:"avg_latency_ms"`
}

// AnalyticsResult is the body of GET /api/analytics/data.
type AnalyticsResult struct {
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	Interval string          `json:"interval"`
	Totals   AnalyticsTotals `json:"totals"`
	ByModel  []ModelUsage    `json:"by_model"`
	Series   []SeriesPoint   `json:"series"`
}

// ID prefixes make IDs self-describing in logs.
const (
	PrefixUser   = "usr_"
	PrefixModel  = "mdl_"
	PrefixServer = "srv_"
)

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// idRandLen is the length of the random part of an ID (~103 bits).
const idRandLen = 20

// NewID returns a fresh random ID with the given prefix.
func NewID(prefix string) string {
	var b [idRandLen]byte
	_, _ = rand.Read(b[:])
	return IDFromBytes(prefix, b[:])
}

// IDFromBytes builds an ID from idRandLen bytes of entropy; the seed uses it
// with a deterministic source.
func IDFromBytes(prefix string, b []byte) string {
	out := make([]byte, 0, len(prefix)+idRandLen)
	out = append(out, prefix...)
	for i := 0; i < idRandLen; i++ {
		out = append(out, idAlphabet[int(b[i%len(b)])%len(idAlphabet)])
	}
	return string(out)
}

// ValidID reports whether s has the shape of an ID, so that odd input can be
// answered 404 or 400 without reaching the database.
func ValidID(s string) bool {
	if len(s) < 5 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// TokenPrefix marks modellab API tokens (helps secret scanners).
const TokenPrefix = "mlk_"

// NewToken returns a fresh API token (256 random bits).
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken returns the stored form of a token. Tokens carry 256 random
// bits, so a fast hash is enough: there is nothing to brute-force.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func validText(field, s string, min, max int) error {
	if !utf8.ValidString(s) {
		return FieldErrorf(field, "%s must be valid UTF-8", field)
	}
	n := utf8.RuneCountInString(s)
	if n < min || n > max {
		if min > 0 {
			return FieldErrorf(field, "%s must be %d to %d characters", field, min, max)
		}
		return FieldErrorf(field, "%s must be at most %d characters", field, max)
	}
	if min > 0 && strings.TrimSpace(s) == "" {
		return FieldErrorf(field, "%s must not be blank", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return FieldErrorf(field, "%s must not contain control characters", field)
		}
	}
	return nil
}

func validMultiline(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return FieldErrorf(field, "%s must be valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > max {
		return FieldErrorf(field, "%s must be at most %d characters", field, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return FieldErrorf(field, "%s must not contain control characters", field)
		}
	}
	return nil
}
