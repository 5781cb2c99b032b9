// Package store is modellab's database: the same schema, queries and
// behaviour on the embedded SQLite (modernc.org/sqlite) and on PostgreSQL
// (pgx). Every statement goes through one small layer (exec, query, get) so
// that query counting and per-statement deadlines are exact, and every error
// leaving the package is a *modellab.Error.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/modellab/modellab"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Engine names returned by DB.Engine.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tunes a DB. The zero value is usable.
type Options struct {
	// OnQuery is called once for every statement sent to the database,
	// including BEGIN and COMMIT, when it has finished (a query when its
	// rows are closed), with how long it took; it feeds
	// modellab_db_queries_total and modellab_db_query_duration_seconds.
	OnQuery func(time.Duration)
	// QueryTimeout bounds each statement (and each short transaction), so
	// that a stuck database turns into EUNAVAILABLE instead of piling up
	// requests. Default 2s.
	QueryTimeout time.Duration
	// MaxConns is the PostgreSQL pool size (default 20) or the SQLite
	// reader pool size (default 4); SQLite always has one writer connection.
	MaxConns int
	Logger   *slog.Logger
}

// DB is a modellab database on SQLite or PostgreSQL. It is safe for
// concurrent use.
type DB struct {
	engine string
	opts   Options
	log    *slog.Logger

	// SQLite: one writer connection serialises writes in-process (SQLite
	// allows one writer anyway; queuing in database/sql beats SQLITE_BUSY),
	// and a small pool of readers runs concurrently thanks to WAL.
	wr, rd *sql.DB

	// PostgreSQL.
	pool *pgxpool.Pool

	rebound sync.Map // SQL text as written -> SQL for this engine
}

// PoolStats describes the connection pool(s) for /metrics.
type PoolStats struct {
	Open         int
	InUse        int
	Idle         int
	MaxOpen      int
	WaitCount    int64
	WaitDuration time.Duration
}

// Open connects to the database named by rawURL: "sqlite://PATH"
// (sqlite://./modellab.db, sqlite:///abs/path.db) or postgres:// and
// postgresql:// URLs. It checks that the database answers, so a caller that
// wants to start without a database must retry Open itself.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{opts: opts, log: opts.Logger}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, modellab.Errorf(modellab.EINVALID, "database URL %q has no scheme (want sqlite:// or postgres://)", redact(rawURL))
	}
	var err error
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		db.engine = EngineSQLite
		err = db.openSQLite(ctx, rest)
	case "postgres", "postgresql":
		db.engine = EnginePostgres
		err = db.openPostgres(ctx, rawURL)
	default:
		return nil, modellab.Errorf(modellab.EINVALID, "unsupported database URL scheme %q (want sqlite:// or postgres://)", scheme)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) openSQLite(ctx context.Context, path string) error {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || strings.Contains(path, ":memory:") {
		// Readers and the writer are separate connections: an in-memory
		// database would be a different one for each.
		return modellab.Errorf(modellab.EINVALID, "sqlite:// needs a file path")
	}
	// temp_store(MEMORY): statement journals and sorts stay in memory, so
	// an image without a temporary directory (scratch, distroless) works.
	base := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)"
	wr, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return modellab.WrapError(modellab.EINTERNAL, err, "cannot open the SQLite database")
	}
	wr.SetMaxOpenConns(1)
	wr.SetMaxIdleConns(1)
	wr.SetConnMaxIdleTime(0)
	wr.SetConnMaxLifetime(0)
	db.wr = wr
	// The writer connects first so that the file exists and is in WAL mode
	// before any reader opens it.
	if err := wr.PingContext(ctx); err != nil {
		return modellab.WrapError(modellab.EUNAVAILABLE, err, "cannot open the SQLite database %s", path)
	}
	n := db.opts.MaxConns
	if n <= 0 {
		n = 4
	}
	rd, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		return modellab.WrapError(modellab.EINTERNAL, err, "cannot open the SQLite database")
	}
	rd.SetMaxOpenConns(n)
	rd.SetMaxIdleConns(n)
	rd.SetConnMaxIdleTime(0)
	db.rd = rd
	return nil
}

func (db *DB) openPostgres(ctx context.Context, rawURL string) error {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return modellab.WrapError(modellab.EINVALID, err, "invalid PostgreSQL URL")
	}
	n := db.opts.MaxConns
	if n <= 0 {
		n = 20
	}
	cfg.MaxConns = int32(n)
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return modellab.WrapError(modellab.EUNAVAILABLE, err, "cannot connect to PostgreSQL")
	}
	db.pool = pool
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		return modellab.WrapError(modellab.EUNAVAILABLE, err, "cannot connect to PostgreSQL")
	}
	return nil
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Engine returns "sqlite" or "postgres".
func (db *DB) Engine() string { return db.engine }

// Close releases all connections. Later calls fail with EUNAVAILABLE.
func (db *DB) Close() error {
	var errs []error
	if db.rd != nil {
		errs = append(errs, db.rd.Close())
	}
	if db.wr != nil {
		errs = append(errs, db.wr.Close())
	}
	if db.pool != nil {
		db.pool.Close()
	}
	return errors.Join(errs...)
}

// Stats reports the pool(s); on SQLite the reader pool and the writer add up.
func (db *DB) Stats() PoolStats {
	var s PoolStats
	if db.pool != nil {
		st := db.pool.Stat()
		s.Open = int(st.TotalConns())
		s.InUse = int(st.AcquiredConns())
		s.Idle = int(st.IdleConns())
		s.MaxOpen = int(st.MaxConns())
		s.WaitCount = st.EmptyAcquireCount()
		s.WaitDuration = st.EmptyAcquireWaitTime()
		return s
	}
	for _, d := range []*sql.DB{db.wr, db.rd} {
		if d == nil {
			continue
		}
		st := d.Stats()
		s.Open += st.OpenConnections
		s.InUse += st.InUse
		s.Idle += st.Idle
		s.MaxOpen += st.MaxOpenConnections
		s.WaitCount += st.WaitCount
		s.WaitDuration += st.WaitDuration
	}
	return s
}

// Migrate applies the embedded migrations that are not applied yet. It is
// idempotent, and on PostgreSQL several instances starting together take a
// session lock so that only one migrates.
func (db *DB) Migrate(ctx context.Context) error {
	_, err := db.MigrateUp(ctx)
	return err
}

// Migration is one embedded migration and whether the database has it.
type Migration struct {
	Version   int64
	File      string
	Applied   bool
	AppliedAt time.Time // zero when pending
}

// MigrateUp is Migrate, returning the migrations it applied (none when the
// database was up to date).
func (db *DB) MigrateUp(ctx context.Context) ([]Migration, error) {
	p, done, err := db.migrations()
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := p.Up(ctx)
	if err != nil {
		return nil, migrationError(err, "migration failed")
	}
	var out []Migration
	for _, r := range res {
		db.log.Info("migration applied", "engine", db.engine, "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
		out = append(out, Migration{Version: r.Source.Version, File: r.Source.Path, Applied: true, AppliedAt: time.Now().UTC()})
	}
	return out, nil
}

// Migrations lists every embedded migration, in order, and whether it is
// applied.
func (db *DB) Migrations(ctx context.Context) ([]Migration, error) {
	p, done, err := db.migrations()
	if err != nil {
		return nil, err
	}
	defer done()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, migrationError(err, "cannot read the migration status")
	}
	out := make([]Migration, 0, len(st))
	for _, m := range st {
		out = append(out, Migration{Version: m.Source.Version, File: m.Source.Path,
			Applied: m.State == goose.StateApplied, AppliedAt: m.AppliedAt.UTC()})
	}
	return out, nil
}

// migrations returns the goose provider of the embedded migrations and a
// function that releases it.
func (db *DB) migrations() (*goose.Provider, func(), error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, nil, modellab.WrapError(modellab.EINTERNAL, err, "migrations")
	}
	var p *goose.Provider
	done := func() {}
	// Migrations may land out of order (00005, the token lifecycle, came
	// after 00006 had shipped): a database that has a later one applies the
	// missing earlier one instead of refusing to start. Each migration
	// touches its own tables, so the order between them does not matter.
	outOfOrder := goose.WithAllowOutofOrder(true)
	goMigrations := goose.WithGoMigrations(db.goMigrations()...)
	switch db.engine {
	case EngineSQLite:
		p, err = goose.NewProvider(goose.DialectSQLite3, db.wr, fsys, outOfOrder, goMigrations)
	default:
		sqldb := stdlib.OpenDBFromPool(db.pool)
		done = func() { _ = sqldb.Close() }
		var locker lock.SessionLocker
		locker, err = lock.NewPostgresSessionLocker()
		if err == nil {
			p, err = goose.NewProvider(goose.DialectPostgres, sqldb, fsys, goose.WithSessionLocker(locker), outOfOrder, goMigrations)
		}
	}
	if err != nil {
		done()
		return nil, nil, modellab.WrapError(modellab.EINTERNAL, err, "cannot prepare migrations")
	}
	return p, done, nil
}

func migrationError(err error, msg string) error {
	if code := classify(err); code == modellab.EUNAVAILABLE {
		return modellab.WrapError(code, err, "the database is unavailable")
	}
	return modellab.WrapError(modellab.EINTERNAL, err, "%s", msg)
}

// Ping checks that the database answers (for /readyz).
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.get(ctx, "ping", "SELECT 1", nil, &one)
}

// Empty reports whether the database has no users yet, not counting the
// users whose IDs are in ignore (the admin user that serve creates for
// ADMIN_TOKEN before it seeds the demo data).
func (db *DB) Empty(ctx context.Context, ignore ...string) (bool, error) {
	var n int64
	where, args := notIn("id", ignore)
	if err := db.get(ctx, "check for users", "SELECT COUNT(*) FROM (SELECT 1 FROM users"+where+" LIMIT 1) AS u", args, &n); err != nil {
		return false, err
	}
	return n == 0, nil
}

// --- the statement layer ---

// rows is what both drivers' result sets have in common.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type sqlRows struct {
	*sql.Rows
	cancel context.CancelFunc
	closed bool
	err    error // Rows.Err as of Close
}

// Close closes the rows, then cancels the statement's context. Rows.Err
// is read before the cancel: database/sql reports a canceled context from
// Err when the rows were not read to EOF (a one-row get), so an Err read
// after the cancel would randomly turn a good result into "context
// canceled" (seen as intermittent 503s on concurrent analytics on SQLite).
func (r *sqlRows) Close() {
	if !r.closed {
		r.closed = true
		r.Rows.Close()
		r.err = r.Rows.Err()
	}
	r.cancel()
}

func (r *sqlRows) Err() error {
	if r.closed {
		return r.err
	}
	return r.Rows.Err()
}

type pgRows struct {
	pgx.Rows
	cancel context.CancelFunc
}

func (r pgRows) Close() { r.Rows.Close(); r.cancel() }

// sqlFor returns q for this engine. Queries are written once with "?"
// placeholders and `COLLATE "C"` (byte order); PostgreSQL gets $n, SQLite
// its BINARY collation, which is byte order for UTF-8 text.
func (db *DB) sqlFor(q string) string {
	if v, ok := db.rebound.Load(q); ok {
		return v.(string)
	}
	var out string
	if db.engine == EngineSQLite {
		out = strings.ReplaceAll(q, `COLLATE "C"`, "COLLATE BINARY")
	} else {
		var b strings.Builder
		n := 0
		for i := 0; i < len(q); i++ {
			if q[i] == '?' {
				n++
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(n))
				continue
			}
			b.WriteByte(q[i])
		}
		out = b.String()
	}
	db.rebound.Store(q, out)
	return out
}

// stmt is the single place where a statement is given its deadline and
// counted: the returned cancel ends it and reports its duration (once, however
// often it is called).
func (db *DB) stmt(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.QueryTimeout)
	if db.opts.OnQuery == nil {
		return ctx, cancel
	}
	start, done := time.Now(), false
	return ctx, func() {
		cancel()
		if !done {
			done = true
			db.opts.OnQuery(time.Since(start))
		}
	}
}

// observe reports one statement that started at start to OnQuery.
func (db *DB) observe(start time.Time) {
	if db.opts.OnQuery != nil {
		db.opts.OnQuery(time.Since(start))
	}
}

// withCtx keeps the reason a statement was cut short next to the driver's
// error, which for SQLite is only "interrupted".
func withCtx(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// exec runs a write statement and returns the number of rows affected. The
// error is raw; callers classify it with fail so that they can word
// conflicts.
func (db *DB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	ctx, cancel := db.stmt(ctx)
	defer cancel()
	q = db.sqlFor(q)
	if db.pool != nil {
		tag, err := db.pool.Exec(ctx, q, args...)
		if err != nil {
			return 0, withCtx(ctx, err)
		}
		return tag.RowsAffected(), nil
	}
	res, err := db.wr.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, withCtx(ctx, err)
	}
	n, err := res.RowsAffected()
	return n, withCtx(ctx, err)
}

// query runs a read statement; the deadline lasts until rows are closed.
func (db *DB) query(ctx context.Context, q string, args ...any) (rows, error) {
	ctx, cancel := db.stmt(ctx)
	q = db.sqlFor(q)
	if db.pool != nil {
		r, err := db.pool.Query(ctx, q, args...)
		if err != nil {
			cancel()
			return nil, withCtx(ctx, err)
		}
		return pgRows{r, cancel}, nil
	}
	r, err := db.rd.QueryContext(ctx, q, args...)
	if err != nil {
		cancel()
		return nil, withCtx(ctx, err)
	}
	return &sqlRows{Rows: r, cancel: cancel}, nil
}

// get runs a query expected to return one row and scans it; errors are
// classified (ENOTFOUND when there is no row), op names the action in
// messages.
func (db *DB) get(ctx context.Context, op, q string, args []any, dest ...any) error {
	r, err := db.query(ctx, q, args...)
	if err != nil {
		return fail(err, op)
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return fail(err, op)
		}
		return modellab.Errorf(modellab.ENOTFOUND, "%s: not found", op)
	}
	if err := r.Scan(dest...); err != nil {
		return fail(err, op)
	}
	r.Close()
	if err := r.Err(); err != nil {
		return fail(err, op)
	}
	return nil
}

// tx is a write transaction; its statements are counted like the others.
type tx struct {
	db  *DB
	ctx context.Context
	sql *sql.Tx
	pg  pgx.Tx
}

func (t *tx) exec(q string, args ...any) error {
	defer t.db.observe(time.Now())
	q = t.db.sqlFor(q)
	var err error
	if t.pg != nil {
		_, err = t.pg.Exec(t.ctx, q, args...)
	} else {
		_, err = t.sql.ExecContext(t.ctx, q, args...)
	}
	return withCtx(t.ctx, err)
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE on SQLite) bounded
// by timeout as a whole; 0 means the caller's context alone. The error is
// raw.
func (db *DB) inTx(ctx context.Context, timeout time.Duration, fn func(t *tx) error) (err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t := &tx{db: db, ctx: ctx}
	start := time.Now()
	if db.pool != nil {
		t.pg, err = db.pool.Begin(ctx)
	} else {
		t.sql, err = db.wr.BeginTx(ctx, nil)
	}
	db.observe(start)
	if err != nil {
		return withCtx(ctx, err)
	}
	defer func() {
		if err != nil {
			// The context may be done already: roll back on a fresh one so
			// that the connection returns to the pool clean.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			defer db.observe(time.Now())
			if t.pg != nil {
				_ = t.pg.Rollback(rctx)
			} else {
				_ = t.sql.Rollback()
			}
		}
	}()
	if err = fn(t); err != nil {
		return withCtx(ctx, err)
	}
	defer db.observe(time.Now())
	if t.pg != nil {
		err = t.pg.Commit(ctx)
	} else {
		err = t.sql.Commit()
	}
	return withCtx(ctx, err)
}

// micros and fromMicros convert timestamps to the stored form: BIGINT unix
// microseconds, identical on both engines and free of time zone handling.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
