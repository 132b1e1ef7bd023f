// Package postgres implements iotflow.Store on PostgreSQL with pgx v5.
//
// All SQL uses unqualified table names, so a store lives in whatever schema
// the connection's search_path selects; the migrations in migrations/*.sql
// create its tables.
package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Pool defaults applied when the connection string sets none.
const (
	defaultMaxConns       = 32
	defaultConnectTimeout = 5 * time.Second
)

var _ interface {
	iotflow.Store
	iotflow.Migrator
	iotflow.PoolReporter
	iotflow.Prober
} = (*Store)(nil)

// Store is an iotflow.Store backed by a PostgreSQL connection pool.
type Store struct {
	pool *pgxpool.Pool

	probeMu   sync.Mutex
	probeConn *pgx.Conn // Probe's own connection, outside the pool
}

// Open connects to the database at connString (a postgres:// URL or a
// key=value string), pings it once and returns the store. The pool holds at
// most pool_max_conns connections (default 32) and gives up connecting after
// connect_timeout (default 5 s).
func Open(ctx context.Context, connString string) (*Store, error) {
	cfg, err := parseConfig(connString)
	if err != nil {
		return nil, err
	}
	return openConfig(ctx, cfg)
}

// parseConfig parses connString and applies the store's pool defaults.
func parseConfig(connString string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse postgres connection string: %w", err)
	}
	// pgxpool.ParseConfig consumes pool_max_conns and fills in its own
	// default (the number of CPUs), so ask the plain parser whether the
	// string named one.
	raw, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse postgres connection string: %w", err)
	}
	if _, ok := raw.RuntimeParams["pool_max_conns"]; !ok {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	return cfg, nil
}

// openConfig opens a pool with cfg and pings the database once.
func openConfig(ctx context.Context, cfg *pgxpool.Config) (*Store, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(ctx, "open postgres pool", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, wrap(ctx, "ping postgres", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes every connection of the pool, waiting for those in use,
// and the probe's own.
func (s *Store) Close() error {
	s.pool.Close()
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probeConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.probeConn.Close(ctx)
		s.probeConn = nil
	}
	return nil
}

// Probe checks that the database answers over a connection of its own,
// outside the pool, so that a pool busy with slow work cannot make a
// healthy database look down. A failed connection is dropped and dialled
// again on the next probe.
func (s *Store) Probe(ctx context.Context) error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probeConn == nil || s.probeConn.IsClosed() {
		c, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return wrap(ctx, "probe postgres", err)
		}
		s.probeConn = c
	}
	if err := s.probeConn.Ping(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = s.probeConn.Close(cctx)
		cancel()
		s.probeConn = nil
		return wrap(ctx, "probe postgres", err)
	}
	return nil
}

// ResetConnections closes the pool's idle connections, and those in use
// as they come back, for when the network under them failed: on a silent
// link they would otherwise hang until TCP gives up.
func (s *Store) ResetConnections() { s.pool.Reset() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap(ctx, "ping postgres", s.pool.Ping(ctx))
}

// text stores an optional string: NULL when empty.
func text(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}

// textPtr is text for an optional update field: NULL (keep the old value)
// when p is nil, otherwise the new value, where "" clears the column.
func textPtr(p *string) pgtype.Text {
	if p == nil {
		return pgtype.Text{}
	}
	return pgtype.Text{String: *p, Valid: true}
}

// utcPtr returns t in UTC, or nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// where collects the conditions of a WHERE clause and their arguments.
type where struct {
	conds []string
	args  []any
}

// add appends a condition whose %d stands for the number of arg's parameter.
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, fmt.Sprintf(cond, len(w.args)))
}

// String returns the clause with a leading space, or "" without conditions.
func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// next returns the number of the parameter after the last one added.
func (w *where) next() int { return len(w.args) + 1 }

// bound returns a LIMIT argument (nil, meaning no limit, when limit is not
// positive) and a non-negative OFFSET.
func bound(limit, offset int) (any, int) {
	var l any
	if limit > 0 {
		l = limit
	}
	return l, max(offset, 0)
}

// PoolStats reports the connection pool, for metrics.
func (s *Store) PoolStats() []iotflow.PoolStats {
	st := s.pool.Stat()
	return []iotflow.PoolStats{{
		Name: "postgres", Open: int(st.TotalConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()),
		Max: int(st.MaxConns()), WaitCount: st.EmptyAcquireCount(), WaitDuration: st.EmptyAcquireWaitTime(),
	}}
}
