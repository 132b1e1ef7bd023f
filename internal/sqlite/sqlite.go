// Package sqlite implements iotflow.Store on an SQLite database file through
// the pure-Go driver modernc.org/sqlite.
//
// SQLite allows one writer at a time, so the store keeps two handles: a
// writer with a single connection whose transactions begin IMMEDIATE (they
// queue for the write lock up front instead of failing with SQLITE_BUSY when
// they upgrade from reading), and a small pool of readers that WAL mode lets
// run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is an iotflow.Store backed by one SQLite database file.
type Store struct {
	writer *sql.DB
	reader *sql.DB

	// Statements of the telemetry hot path, prepared once on the writer.
	prepMu                       sync.Mutex
	insertReading, countReadings *sql.Stmt
}

var _ interface {
	iotflow.Store
	iotflow.Migrator
	iotflow.PoolReporter
} = (*Store)(nil)

// readerConns is the size of the read pool.
const readerConns = 4

// Connection settings, applied by the driver to every new connection.
// synchronous=FULL: in WAL mode NORMAL may lose the last acknowledged
// transactions on power loss, and an acknowledged reading must survive.
// journal_mode is persistent in the file, so the writer sets it for both.
// wal_autocheckpoint: the commit that takes the WAL past this many pages
// (4 KiB each) copies them into the database file. Telemetry keeps
// rewriting the same few hundred index pages, so checkpointing every
// 10000 pages instead of SQLite's 1000 copies far fewer pages per reading;
// the price is a WAL file of about 40 MiB. Durability does not depend on
// it: every commit is synced to the WAL.
const (
	writerParams = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(10000)" +
		"&_txlock=immediate"
	readerParams = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
)

// Open opens the SQLite database file at path, creating the file and its
// directory when they are missing. Call Migrate before using the store.
func Open(ctx context.Context, path string) (*Store, error) {
	// Two handles on one in-memory database would be two databases, and the
	// driver reads everything after '?' as its parameters.
	if path == "" || strings.Contains(path, ":memory:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite: unsupported database path %q", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite: create directory: %w", err)
	}
	// The writer connects first: it switches a new file to WAL mode.
	writer, err := openDB(ctx, path+"?"+writerParams, 1)
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer %s: %w", path, err)
	}
	reader, err := openDB(ctx, path+"?"+readerParams, readerConns)
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open sqlite reader %s: %w", path, err)
	}
	return &Store{writer: writer, reader: reader}, nil
}

func openDB(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, wrap("connect", err)
	}
	return db, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.reader.Close(), s.writer.Close())
}

// Ping checks that both the writer and the readers reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return wrap("ping writer", err)
	}
	if err := s.reader.PingContext(ctx); err != nil {
		return wrap("ping reader", err)
	}
	return nil
}

// writeTx runs fn in one IMMEDIATE transaction of the writer and commits it
// when fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return wrap("begin", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return interrupted(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return interrupted(ctx, wrap("commit", err))
	}
	return nil
}

// interrupted returns ctx's error in place of err when ctx has ended:
// database/sql rolls a transaction back as soon as its context ends, and a
// statement still running then fails with "statement is closed" or "has
// already been rolled back" instead of the reason. Application errors stay.
func interrupted(ctx context.Context, err error) error {
	var e *iotflow.Error
	if cause := ctx.Err(); cause != nil && !errors.Is(err, cause) && !errors.As(err, &e) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

// readTx runs fn in one read transaction, so that the statements of fn see
// the same snapshot of the database.
func (s *Store) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap("begin read", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isUnique reports whether err is a violated UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isForeignKey reports whether err is a violated FOREIGN KEY constraint.
func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// unavailable reports whether err means the database cannot be reached or
// is locked by another process beyond the busy timeout.
func unavailable(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN:
		return true
	}
	return false
}

// wrap adds what was being done to err. Application errors pass unchanged;
// an unreachable database also gets the code EUNAVAILABLE, keeping the
// driver's error in the chain for the log.
func wrap(op string, err error) error {
	var e *iotflow.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", op, iotflow.Errorf(iotflow.EUNAVAILABLE,
			"Service unavailable", "The database is not available; try again later."), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// micros converts a time to the stored form, unix microseconds.
func micros(t time.Time) int64 {
	return t.UnixMicro()
}

// fromMicros converts a stored time back, in UTC.
func fromMicros(v int64) time.Time {
	return time.UnixMicro(v).UTC()
}

// nullMicros converts an optional time to the stored form.
func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// fromNullMicros converts an optional stored time back.
func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// nullString stores an empty optional string as NULL.
func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// PoolStats reports the writer and reader pools, for metrics.
func (s *Store) PoolStats() []iotflow.PoolStats {
	conv := func(name string, st sql.DBStats) iotflow.PoolStats {
		return iotflow.PoolStats{Name: name, Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle,
			Max: st.MaxOpenConnections, WaitCount: st.WaitCount, WaitDuration: st.WaitDuration}
	}
	return []iotflow.PoolStats{conv("sqlite_writer", s.writer.Stats()), conv("sqlite_reader", s.reader.Stats())}
}
