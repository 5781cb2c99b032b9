package service

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/modellab/modellab"
)

// analyticsArg is what an analytics load needs: whose events, which query.
type analyticsArg struct {
	userID string
	q      modellab.AnalyticsQuery
}

// AnalyticsData returns u's encoded analytics for q (already validated).
// Ingest does not invalidate these entries: they live by their TTL.
func (s *Service) AnalyticsData(ctx context.Context, u *modellab.User, q modellab.AnalyticsQuery) (Answer, error) {
	spec := readSpec{key: keyAnalytics(u.ID, q), group: GroupAnalytics, ttl: s.cfg.AnalyticsTTL}
	e, res, err := cachedRead(ctx, s, spec, analyticsArg{u.ID, q}, loadAnalytics)
	if err != nil {
		return Answer{}, err
	}
	return entryAnswer(e, res), nil
}

func loadAnalytics(ctx context.Context, s *Service, a analyticsArg) (rawBody, error) {
	res, err := s.store.Analytics(ctx, a.userID, a.q)
	if err != nil {
		return nil, err
	}
	res.ByModel = nonNil(res.ByModel)
	res.Series = nonNil(res.Series)
	return encodeAnalytics(res)
}

// EventInput is one event a caller records.
type EventInput struct {
	ModelID      string     `json:"model_id"`
	Timestamp    *time.Time `json:"timestamp"`
	InputTokens  int64      `json:"input_tokens"`
	OutputTokens int64      `json:"output_tokens"`
	LatencyMS    float64    `json:"latency_ms"`
	Status       string     `json:"status"`
	CostUSD      *float64   `json:"cost_usd"`
}

// IngestEvents validates every event, then stores all of them or none.
func (s *Service) IngestEvents(ctx context.Context, u *modellab.User, in []EventInput) (int, error) {
	if len(in) == 0 || len(in) > modellab.MaxEventsPerBatch {
		return 0, modellab.FieldErrorf("events", "events must hold 1 to %d events", modellab.MaxEventsPerBatch)
	}
	events, modelIDs, err := s.toEvents(u, in)
	if err != nil {
		return 0, err
	}
	err = s.withDB(ctx, func(ctx context.Context) error {
		if err := s.checkEventModels(ctx, u, events, modelIDs); err != nil {
			return err
		}
		return s.store.InsertEvents(ctx, events)
	})
	if err != nil {
		return 0, err
	}
	return len(events), nil
}

// toEvents validates the input and returns the events and the distinct
// model ids they name.
func (s *Service) toEvents(u *modellab.User, in []EventInput) ([]modellab.Event, []string, error) {
	now := s.now().UTC()
	events := make([]modellab.Event, len(in))
	modelIDs := make([]string, 0, 8)
	for i, e := range in {
		ev := modellab.Event{
			UserID: u.ID, ModelID: e.ModelID, Timestamp: now, InputTokens: e.InputTokens,
			OutputTokens: e.OutputTokens, LatencyMS: e.LatencyMS, Status: e.Status,
		}
		if e.Timestamp != nil {
			ev.Timestamp = e.Timestamp.UTC()
		}
		if e.CostUSD != nil {
			ev.CostUSD = *e.CostUSD
		}
		if err := ev.Valid(now); err != nil {
			return nil, nil, eventError(i, modellab.ErrorField(err), modellab.ErrorMessage(err))
		}
		if !modellab.ValidID(ev.ModelID) {
			return nil, nil, eventError(i, "model_id", "model_id does not name a model you can use")
		}
		events[i] = ev
		modelIDs = append(modelIDs, ev.ModelID)
	}
	slices.Sort(modelIDs)
	return events, slices.Compact(modelIDs), nil
}

// checkEventModels rejects events of models u may not see.
func (s *Service) checkEventModels(ctx context.Context, u *modellab.User, events []modellab.Event, modelIDs []string) error {
	models, err := s.store.ModelsByIDs(ctx, modelIDs)
	if err != nil {
		return err
	}
	visible := map[string]bool{}
	for i := range models {
		if models[i].VisibleTo(u) {
			visible[models[i].ID] = true
		}
	}
	for i, ev := range events {
		if !visible[ev.ModelID] {
			return eventError(i, "model_id", "model_id does not name a model you can use")
		}
	}
	return nil
}

// eventError names the event (and its field, when known) in both the
// message and the error's field.
func eventError(i int, field, msg string) error {
	name := fmt.Sprintf("events[%d]", i)
	if field != "" {
		name += "." + field
	}
	return modellab.FieldErrorf(name, "events[%d]: %s", i, msg)
}
