package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testpg"
)

// TestAnalyticsUsesIndex checks that every analytics statement reads the
// events of one user through the covering index, never the whole table.
func TestAnalyticsUsesIndex(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		engine, url string
	}{
		{EngineSQLite, "sqlite://" + filepath.Join(t.TempDir(), "x.db")},
		{EnginePostgres, testpg.URL(t)},
	} {
		t.Run(tt.engine, func(t *testing.T) {
			db, err := Open(ctx, tt.url, Options{QueryTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for _, where := range []string{"user_id = ? AND ts >= ? AND ts < ?", "user_id = ? AND ts >= ? AND ts < ? AND model_id = ?"} {
				qs := analyticsSQL(where)
				for name, q := range map[string]string{"totals": qs.totals, "p95": qs.p95, "by_model": qs.byModel, "series": qs.series} {
					args := []any{"usr_x", int64(0), int64(1)}
					if strings.Contains(where, "model_id") {
						args = append(args, "mdl_x")
					}
					switch name {
					case "series":
						args = append([]any{int64(3600000)}, args...)
					case "by_model":
						args = append(args, "usr_x")
					}
					plan := db.explain(t, q, args)
					t.Logf("%s:\n%s", name, plan)
					if !strings.Contains(plan, "events_user_ts") {
						t.Errorf("%s (%s): plan does not use events_user_ts:\n%s", name, where, plan)
					}
					if strings.Contains(plan, "SCAN events") || strings.Contains(plan, "Seq Scan on events") {
						t.Errorf("%s (%s): full scan of events:\n%s", name, where, plan)
					}
				}
			}
		})
	}
}

// explain returns the query plan as text. On PostgreSQL sequential scans are
// disabled for the check: on a small test table the planner rightly prefers
// them, and what matters is that the index can serve the query.
func (db *DB) explain(t *testing.T, q string, args []any) string {
	t.Helper()
	ctx := context.Background()
	q = db.sqlFor(q)
	var lines []string
	if db.pool != nil {
		tx, err := db.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatalf("EXPLAIN: %v\n%s", err, q)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, s)
		}
		return strings.Join(lines, "\n")
	}
	rows, err := db.rd.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("EXPLAIN: %v\n%s", err, q)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestRollupReadsUseKeys: the rollup reads of Analytics are range scans of
// one user's rows through the primary keys, never full scans.
func TestRollupReadsUseKeys(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			db := openMigrated(t, engine)
			r := msRange{1234, 40*dayMS - 5678} // raw edges, hours and days
			for _, a := range []analyticsRead{
				{user: "usr_x", r: r},
				{user: "usr_x", r: r, modelID: "mdl_x"},
			} {
				u := a.forModels().sums(coverOf(r, true))
				v := a.forTotals().sums(coverOf(r, true))
				for name, q := range map[string]union{"by model": u, "totals": v} {
					plan := db.explain(t, q.sql(), q.args)
					t.Logf("%s (model %q):\n%s", name, a.modelID, plan)
					for _, line := range strings.Split(plan, "\n") {
						if strings.Contains(line, "SCAN usage_") || strings.Contains(line, "SCAN events") ||
							strings.Contains(line, "Seq Scan on") {
							t.Errorf("%s (model %q): full scan:\n%s", name, a.modelID, plan)
						}
						if strings.Contains(line, "Index Cond: ((user_id = 'usr_x'::text) AND (period") &&
							strings.Contains(line, "pkey") {
							t.Errorf("%s (model %q): a range of periods through the model's key:\n%s", name, a.modelID, plan)
						}
					}
				}
			}
			plan := db.explain(t, db.digestsAndNamesSQL(), []any{"usr_x", int64(0), 7 * dayMS, "usr_x", "usr_x"})
			t.Logf("digests and names:\n%s", plan)
			for _, line := range strings.Split(plan, "\n") {
				if strings.Contains(line, "SCAN u") || strings.Contains(line, "Seq Scan on") {
					t.Errorf("digests and names: full scan:\n%s", plan)
				}
			}
		})
	}
}

// TestHistoryReadsUseKey: the history read and ingest's lookup of stored
// chunks reach one run's chunks through the primary key, never a scan.
func TestHistoryReadsUseKey(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			db := openMigrated(t, engine)
			for name, q := range map[string]struct {
				sql  string
				args []any
			}{
				"all keys": {historySQL(0), []any{"run_x", "run_x", int64(0), int64(-1)}},
				"a poll":   {historySQL(0), []any{"run_x", "run_x", int64(1562), int64(99_999)}},
				"two keys": {historySQL(2), []any{"run_x", "run_x", int64(7), int64(500), "loss", "lr"}},
			} {
				plan := db.explain(t, q.sql, q.args)
				t.Logf("%s:\n%s", name, plan)
				if strings.Contains(plan, "SCAN metric_chunks\n") || strings.HasSuffix(plan, "SCAN metric_chunks") ||
					strings.Contains(plan, "Seq Scan on metric_chunks") {
					t.Errorf("%s: full scan of metric_chunks:\n%s", name, plan)
				}
				if !strings.Contains(plan, "metric_chunks_pkey") && !strings.Contains(plan, "sqlite_autoindex_metric_chunks_1") {
					t.Errorf("%s: plan does not use the chunks' primary key:\n%s", name, plan)
				}
			}
		})
	}
}
