package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered file of migrations/.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations by ascending version. A file
// is named NNNN_description.sql; its number is its version.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name does not start with a positive number", base)
		}
		sql, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: version, name: base, sql: string(sql)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrationLockClass is the first key of the advisory lock that serialises
// Migrate runs; the second is a hash of the schema, so that stores in
// different schemas (such as parallel tests) do not wait for each other.
const migrationLockClass = 0x696f74 // "iot"

// Migrate applies the embedded migrations that the database lacks, in order,
// each in its own transaction, and returns the versions it applied. Several
// processes may run it at once: they take turns on an advisory lock.
func (s *Store) Migrate(ctx context.Context) (applied []int, err error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	// A session-level advisory lock belongs to one connection, so hold one
	// connection for the whole run.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap(ctx, "migrate: acquire connection", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, migrationLockClass); err != nil {
		return nil, wrap(ctx, "migrate: lock", err)
	}
	defer unlock(ctx, conn)

	if _, err := conn.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL
		)`); err != nil {
		return nil, wrap(ctx, "create schema_migrations", err)
	}
	// Read only now, under the lock: another process may just have
	// applied what this one was about to.
	rows, _ := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, wrap(ctx, "read applied migrations", err)
	}

	applied = []int{}
	for _, m := range ms {
		if slices.Contains(done, int32(m.version)) {
			continue
		}
		if err := apply(ctx, conn, m); err != nil {
			return applied, err
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}

// apply runs m and records it in one transaction.
func apply(ctx context.Context, conn *pgxpool.Conn, m migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return wrap(ctx, "migration "+m.name+": begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Without arguments Exec uses the simple protocol, which runs a file of
	// several statements.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return wrap(ctx, "migration "+m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
		m.version, time.Now().UTC()); err != nil {
		return wrap(ctx, "migration "+m.name+": record", err)
	}
	return wrap(ctx, "migration "+m.name+": commit", tx.Commit(ctx))
}

// unlock releases the migration lock. When that fails the connection is
// closed, which releases the lock too, rather than returned to the pool
// still holding it.
func unlock(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, migrationLockClass); err != nil {
		conn.Conn().Close(ctx)
	}
}

// PendingMigrations returns the embedded migrations the database lacks.
func (s *Store) PendingMigrations(ctx context.Context) ([]int, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	rows, _ := s.pool.Query(ctx, `SELECT version FROM schema_migrations`)
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		if sqlState(err) != codeUndefinedTable {
			return nil, wrap(ctx, "read applied migrations", err)
		}
		done = nil
	}
	pending := []int{}
	for _, m := range ms {
		if !slices.Contains(done, int32(m.version)) {
			pending = append(pending, m.version)
		}
	}
	return pending, nil
}
