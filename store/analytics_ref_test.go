package store

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modellab/modellab"
)

// analyticsFromEvents aggregates userID's events in [q.From, q.To) from the
// events alone, with an exact percentile: the reference that Analytics,
// which reads the rollups, must agree with (the tests compare them). Its
// four queries run concurrently.
func (db *DB) analyticsFromEvents(ctx context.Context, userID string, q modellab.AnalyticsQuery) (modellab.AnalyticsResult, error) {
	if err := q.Valid(); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	res := modellab.AnalyticsResult{From: q.From, To: q.To, Interval: q.Interval,
		ByModel: []modellab.ModelUsage{}, Series: []modellab.SeriesPoint{}}
	from, to := ceilMilli(q.From), ceilMilli(q.To)
	where := "user_id = ? AND ts >= ? AND ts < ?"
	args := []any{userID, from, to}
	if q.ModelID != "" {
		where += " AND model_id = ?"
		args = append(args, q.ModelID)
	}
	step := q.Step().Milliseconds()
	start := floorDiv(q.From.UnixMilli(), step) * step
	var series []modellab.SeriesPoint
	for t := start; t < to; t += step {
		series = append(series, modellab.SeriesPoint{T: time.UnixMilli(t).UTC()})
	}
	if series == nil {
		series = []modellab.SeriesPoint{}
	}

	var costNanos, latUS, p95US int64
	qs := analyticsSQL(where)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return db.get(gctx, "analytics totals", qs.totals, args,
			&res.Totals.Requests, &res.Totals.Errors, &res.Totals.InputTokens, &res.Totals.OutputTokens,
			&costNanos, &latUS)
	})
	g.Go(func() error {
		// Nearest rank: the ceil(0.95 n)-th smallest latency, computed in
		// integers so that both engines agree to the last bit.
		err := db.get(gctx, "analytics p95", qs.p95, args, &p95US)
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return nil // no events
		}
		return err
	})
	g.Go(func() error {
		// Aggregate first, then join: one lookup per model, and the join
		// condition hides names of models the user may no longer see.
		r, err := db.query(gctx, qs.byModel, append(args[:len(args):len(args)], userID)...)
		if err != nil {
			return fail(err, "analytics by model")
		}
		defer r.Close()
		for r.Next() {
			var u modellab.ModelUsage
			var cost, lat int64
			if err := r.Scan(&u.ModelID, &u.ModelName, &u.Requests, &u.Errors, &u.InputTokens,
				&u.OutputTokens, &cost, &lat); err != nil {
				return fail(err, "analytics by model")
			}
			u.CostUSD, u.AvgLatencyMS = usd(cost), avgMS(lat, u.Requests)
			res.ByModel = append(res.ByModel, u)
		}
		return fail(r.Err(), "analytics by model")
	})
	g.Go(func() error {
		r, err := db.query(gctx, qs.series, append([]any{step}, args...)...)
		if err != nil {
			return fail(err, "analytics series")
		}
		defer r.Close()
		for r.Next() {
			var b, lat int64
			var p modellab.SeriesPoint
			if err := r.Scan(&b, &p.Requests, &p.Errors, &p.Tokens, &lat); err != nil {
				return fail(err, "analytics series")
			}
			p.AvgLatencyMS = avgMS(lat, p.Requests)
			if i := (b*step - start) / step; i >= 0 && i < int64(len(series)) {
				p.T = series[i].T
				series[i] = p
			}
		}
		return fail(r.Err(), "analytics series")
	})
	if err := g.Wait(); err != nil {
		return modellab.AnalyticsResult{}, err
	}
	res.Totals.CostUSD = usd(costNanos)
	res.Totals.AvgLatencyMS = avgMS(latUS, res.Totals.Requests)
	res.Totals.P95LatencyMS = float64(p95US) / 1e3
	res.Series = series
	return res, nil
}
