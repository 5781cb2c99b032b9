package store

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/modellab/modellab"
	"modernc.org/sqlite"
)

// SQLite result codes (sqlite3.h); the primary code is the low byte.
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteInterrupt  = 9
	sqliteIOErr      = 10
	sqliteFull       = 13
	sqliteCantOpen   = 14
	sqliteConstraint = 19

	sqliteConstraintFK     = 787
	sqliteConstraintPK     = 1555
	sqliteConstraintUnique = 2067
)

// classify maps a driver error to a modellab error code. The rule of thumb:
// what a retry later could fix is EUNAVAILABLE (the server answers 503 and
// may serve stale data), a constraint is the client's (409/400), anything
// else is a bug.
func classify(err error) string {
	if err == nil {
		return ""
	}
	var me *modellab.Error
	if errors.As(err, &me) {
		return me.Code
	}
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) {
		return modellab.ENOTFOUND
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return modellab.EUNAVAILABLE
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return modellab.ECONFLICT
		case strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "22"):
			// integrity (FK, NOT NULL, CHECK) and data exceptions
			return modellab.EINVALID
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"),
			strings.HasPrefix(pe.Code, "57"), strings.HasPrefix(pe.Code, "40"):
			// connection, resources, operator intervention (incl. statement
			// timeout, shutdown), serialization failure / deadlock
			return modellab.EUNAVAILABLE
		}
		return modellab.EINTERNAL
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteConstraint:
			if c := se.Code(); c == sqliteConstraintUnique || c == sqliteConstraintPK {
				return modellab.ECONFLICT
			}
			return modellab.EINVALID
		case sqliteBusy, sqliteLocked, sqliteInterrupt, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return modellab.EUNAVAILABLE
		}
		return modellab.EINTERNAL
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) {
		return modellab.EUNAVAILABLE
	}
	// database/sql does not export the error of a closed *sql.DB.
	if strings.Contains(err.Error(), "sql: database is closed") {
		return modellab.EUNAVAILABLE
	}
	return modellab.EINTERNAL
}

// fail turns err into a *modellab.Error with a generic message; op says what
// was being done. Callers that can word a conflict better check classify
// first.
func fail(err error, op string) error {
	if err == nil {
		return nil
	}
	var me *modellab.Error
	if errors.As(err, &me) {
		return err
	}
	switch code := classify(err); code {
	case modellab.EUNAVAILABLE:
		return modellab.WrapError(code, err, "the database is unavailable (%s)", op)
	case modellab.ENOTFOUND:
		return modellab.WrapError(code, err, "%s: not found", op)
	case modellab.ECONFLICT:
		return modellab.WrapError(code, err, "%s: already exists", op)
	case modellab.EINVALID:
		return modellab.WrapError(code, err, "%s: invalid data", op)
	default:
		return modellab.WrapError(modellab.EINTERNAL, err, "%s failed", op)
	}
}
