package service

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
)

// Cache keys and tags of the contract. User IDs in keys are ours (validated
// on the way in); anything a client typed is hashed before it reaches a key.
const (
	keyModelsGlobal = "api:models:global"
)

// Groups of cached reads: the endpoint label of the cache metrics.
const (
	GroupModels    = "models"
	GroupServers   = "servers"
	GroupAnalytics = "analytics"
	GroupAcademy   = "academy"
	GroupRuns      = "runs"
	// GroupChat is the chat's reads: the OpenAI model list and the
	// conversation lists.
	GroupChat = "chat"
)

// Groups lists every group, for the metrics collector.
var Groups = []string{GroupModels, GroupServers, GroupAnalytics, GroupAcademy, GroupRuns, GroupChat}

// PartGroup is the group of the cached parts of a composed answer of
// group g: their lookups are not requests (the answer is counted once,
// under g), their loads are g's loads.
func PartGroup(g string) string { return g + "/part" }

var (
	groupModelsPart  = PartGroup(GroupModels)
	groupServersPart = PartGroup(GroupServers)
)

func keyModelsUser(userID string) string  { return "api:models:user:" + userID }
func keyServersUser(userID string) string { return "api:servers:user:" + userID }
func keyRunsUser(userID string) string    { return "api:runs:user:" + userID }

// tagRun is recorded by every metrics entry of a run: an ingest (or any
// write to the run) invalidates all of them, whatever their parameters, in
// O(1) and on every instance.
func tagRun(runID string) string { return "run:" + runID }

// keyRunMetrics hashes the canonical parameters like keyAnalytics. The
// reader is part of them: only the owner may read a run, and a key of
// someone else's holds nothing (its load answers not found), so a cached
// history can never be served to another user.
func keyRunMetrics(userID, runID string, q modellab.MetricQuery) string {
	sum := sha256.Sum256([]byte(canonicalMetrics(userID, q)))
	return "api:runs:" + runID + ":metrics:" + hex.EncodeToString(sum[:16])
}

// canonicalMetrics is the one spelling of a parsed history query (keys
// sorted and distinct).
func canonicalMetrics(userID string, q modellab.MetricQuery) string {
	var b strings.Builder
	b.WriteString("v1|user=")
	b.WriteString(userID)
	b.WriteString("|keys=")
	b.WriteString(strings.Join(q.Keys, ","))
	b.WriteString("|after=")
	b.WriteString(strconv.FormatInt(q.AfterStep, 10))
	b.WriteString("|max=")
	b.WriteString(strconv.Itoa(q.MaxPoints))
	return b.String()
}

// Lab Academy: the courses and each lesson are public entries, the same
// bytes for every reader; progress is per user. Lesson slugs come from the
// catalog (checked before they reach a key), never from raw input. Lessons
// change only with the binary: during a rolling deploy that changes them,
// instances of the two versions share these entries for up to their TTL,
// or until an admin invalidates "api:academy:*".
const keyAcademyCourses = "api:academy:courses"

func keyAcademyLesson(slug string) string     { return "api:academy:lesson:" + slug }
func keyAcademyProgress(userID string) string { return "api:academy:progress:user:" + userID }

// The chat's keys: the models a user can chat with (GET /v1/models), which
// follow the user's servers and the models they can see, and the user's
// conversation list.
func keyChatModels(userID string) string    { return "api:v1:models:user:" + userID }
func keyConversations(userID string) string { return "api:conversations:user:" + userID }

// keyAnalytics hashes the canonical parameters: equivalent spellings share
// one entry and raw input never ends up in a key.
func keyAnalytics(userID string, q modellab.AnalyticsQuery) string {
	sum := sha256.Sum256([]byte(canonicalAnalytics(q)))
	return "api:analytics:user:" + userID + ":" + hex.EncodeToString(sum[:16])
}

// canonicalAnalytics is the one spelling of a parsed query. Times are in
// unix milliseconds, the precision of stored events.
func canonicalAnalytics(q modellab.AnalyticsQuery) string {
	var b strings.Builder
	b.WriteString("v1|from=")
	b.WriteString(strconv.FormatInt(q.From.UnixMilli(), 10))
	b.WriteString("|to=")
	b.WriteString(strconv.FormatInt(q.To.UnixMilli(), 10))
	b.WriteString("|interval=")
	b.WriteString(q.Interval)
	b.WriteString("|model_id=")
	b.WriteString(q.ModelID)
	return b.String()
}

// defaultAnalyticsRange is the window when the client gives no bounds.
const defaultAnalyticsRange = 7 * 24 * time.Hour

// ParseAnalyticsQuery reads from, to, interval and model_id. Missing bounds
// default to the last 7 days ending at the end of the current bucket, so
// the default query keeps one cache key for a whole hour or day. Repeated
// parameters are rejected rather than guessed at.
func ParseAnalyticsQuery(v url.Values, now time.Time) (modellab.AnalyticsQuery, error) {
	var q modellab.AnalyticsQuery
	for _, name := range []string{"from", "to", "interval", "model_id"} {
		if len(v[name]) > 1 {
			return q, modellab.FieldErrorf(name, "parameter %s is given more than once", name)
		}
	}
	q.Interval = v.Get("interval")
	if q.Interval == "" {
		q.Interval = modellab.IntervalDay
	}
	if q.Interval != modellab.IntervalHour && q.Interval != modellab.IntervalDay {
		return q, modellab.FieldErrorf("interval", "interval must be %q or %q", modellab.IntervalHour, modellab.IntervalDay)
	}
	q.ModelID = v.Get("model_id")
	var err error
	if s := v.Get("from"); s != "" {
		if q.From, err = parseTime("from", s); err != nil {
			return q, err
		}
	}
	if s := v.Get("to"); s != "" {
		if q.To, err = parseTime("to", s); err != nil {
			return q, err
		}
	}
	step := q.Step()
	switch {
	case q.To.IsZero() && q.From.IsZero():
		q.To = ceilTime(now.UTC(), step)
		q.From = q.To.Add(-defaultAnalyticsRange)
	case q.To.IsZero():
		q.To = ceilTime(now.UTC(), step)
	case q.From.IsZero():
		q.From = q.To.Add(-defaultAnalyticsRange)
	}
	q.From = q.From.UTC().Truncate(time.Millisecond)
	q.To = q.To.UTC().Truncate(time.Millisecond)
	return q, q.Valid()
}

// parseTime accepts RFC 3339 or a plain date (midnight UTC).
func parseTime(name, s string) (time.Time, error) {
	if len(s) > 64 {
		return time.Time{}, modellab.FieldErrorf(name, "%s must be an RFC 3339 time or a date (YYYY-MM-DD)", name)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Year() < 1970 || t.Year() > 9999 {
			return time.Time{}, modellab.FieldErrorf(name, "%s is out of range", name)
		}
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if t.Year() < 1970 {
			return time.Time{}, modellab.FieldErrorf(name, "%s is out of range", name)
		}
		return t, nil
	}
	return time.Time{}, modellab.FieldErrorf(name, "%s must be an RFC 3339 time or a date (YYYY-MM-DD)", name)
}

// ceilTime rounds t up to a multiple of step since the epoch (UTC).
func ceilTime(t time.Time, step time.Duration) time.Time {
	f := t.Truncate(step)
	if f.Equal(t) {
		return f
	}
	return f.Add(step)
}
