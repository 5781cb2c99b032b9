package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"
)

// chunksVersion is the migration that moves metric points from a row
// each (metric_points, 00002) into chunks (metric_chunks). It is written
// in Go because the records are packed by the same code as ingest's, on
// both engines; SQL has no portable way to build them.
const chunksVersion = 7

// goMigrations are the migrations written in Go, next to the embedded SQL
// ones.
func (db *DB) goMigrations() []*goose.Migration {
	return []*goose.Migration{goose.NewGoMigration(chunksVersion,
		&goose.GoFunc{RunTx: db.chunksUp}, &goose.GoFunc{RunTx: db.chunksDown}), db.digestsMigration()}
}

// blobType is the engine's type for a column of bytes.
func (db *DB) blobType() string {
	if db.engine == EngineSQLite {
		return "BLOB"
	}
	return "BYTEA"
}

// migrateBatch rows per INSERT of a migration.
const migrateBatch = 500

func (db *DB) chunksUp(ctx context.Context, tx *sql.Tx) error {
	// The primary key is the read path (one run's keys, each a range of
	// chunks) and the upsert's target. No foreign key, as metric_points
	// had none: ingest checks the run, and deleting a run deletes its
	// chunks.
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE metric_chunks (
		run_id TEXT NOT NULL,
		key    TEXT NOT NULL,
		chunk  BIGINT NOT NULL CHECK (chunk >= 0),
		lo     BIGINT NOT NULL CHECK (lo >= 0),
		hi     BIGINT NOT NULL,
		data   %s NOT NULL,
		PRIMARY KEY (run_id, key, chunk))`, db.blobType()))
	if err != nil {
		return err
	}
	return db.moveRuns(ctx, tx, "metric_points", db.chunkRun)
}

func (db *DB) chunksDown(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `CREATE TABLE metric_points (
		run_id TEXT NOT NULL,
		key    TEXT NOT NULL,
		step   BIGINT NOT NULL CHECK (step >= 0),
		value  DOUBLE PRECISION NOT NULL,
		ts     BIGINT NOT NULL,
		PRIMARY KEY (run_id, key, step))`)
	if err != nil {
		return err
	}
	return db.moveRuns(ctx, tx, "metric_chunks", db.unchunkRun)
}

// moveRuns moves every run's rows out of table with move, then drops it.
// A run at a time, its rows read to the end before they are written
// elsewhere: a connection serves one statement at a time, and one run's
// points fit in memory where a database's may not.
func (db *DB) moveRuns(ctx context.Context, tx *sql.Tx, table string, move func(context.Context, *sql.Tx, string) error) error {
	runs, err := migrateDistinct(ctx, tx, "run_id", table)
	if err != nil {
		return err
	}
	for _, run := range runs {
		if err := move(ctx, tx, run); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "DROP TABLE "+table)
	return err
}

// migrateDistinct lists the distinct values of col in table (the runs,
// the users a migration goes through one at a time).
func migrateDistinct(ctx context.Context, tx *sql.Tx, col, table string) ([]string, error) {
	var out []string
	err := migrateScan(ctx, tx, "SELECT DISTINCT "+col+" FROM "+table, nil, func(scan func(...any) error) error {
		var v string
		err := scan(&v)
		out = append(out, v)
		return err
	})
	return out, err
}

// chunkRun moves one run's points into chunks.
func (db *DB) chunkRun(ctx context.Context, tx *sql.Tx, run string) error {
	r, err := tx.QueryContext(ctx, db.sqlFor("SELECT key, step, value, ts FROM metric_points WHERE run_id = ? ORDER BY key, step"), run)
	if err != nil {
		return err
	}
	defer r.Close()
	var s chunkStream
	var rows [][]any
	for r.Next() {
		var key string
		var step, ts int64
		var value float64
		if err := r.Scan(&key, &step, &value, &ts); err != nil {
			return err
		}
		if row, ok := s.add(run, key, step, value, ts); ok {
			rows = append(rows, row)
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	r.Close()
	if row := s.flush(); row != nil {
		rows = append(rows, row)
	}
	return db.migrateInsert(ctx, tx, "metric_chunks", chunkCols, rows)
}

// unchunkRun moves one run's chunks back into a row per point.
func (db *DB) unchunkRun(ctx context.Context, tx *sql.Tx, run string) error {
	r, err := tx.QueryContext(ctx, db.sqlFor("SELECT key, data FROM metric_chunks WHERE run_id = ?"), run)
	if err != nil {
		return err
	}
	defer r.Close()
	var rows [][]any
	for r.Next() {
		var key string
		var data []byte
		if err := r.Scan(&key, &data); err != nil {
			return err
		}
		if err := checkChunk(data); err != nil {
			return err
		}
		for i := range len(data) / recordSize {
			step, value, ts := record(data, i)
			rows = append(rows, []any{run, key, step, value, ts})
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	r.Close()
	return db.migrateInsert(ctx, tx, "metric_points", pointCols, rows)
}

var pointCols = []string{"run_id", "key", "step", "value", "ts"}

// migrateInsert writes rows inside a migration, migrateBatch at a time.
func (db *DB) migrateInsert(ctx context.Context, tx *sql.Tx, table string, cols []string, rows [][]any) error {
	for len(rows) > 0 {
		part := rows[:min(len(rows), migrateBatch)]
		rows = rows[len(part):]
		args := make([]any, 0, len(part)*len(cols))
		for _, r := range part {
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, db.sqlFor(insertValues(table, cols, len(part))), args...); err != nil {
			return err
		}
	}
	return nil
}
