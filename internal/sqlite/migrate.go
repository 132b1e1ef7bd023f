package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// Migrate applies the migrations that the database lacks, in order, each in
// its own transaction, and returns the versions it applied.
func (s *Store) Migrate(ctx context.Context) (applied []int, err error) {
	migrations, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`
	if _, err := s.writer.ExecContext(ctx, createTable); err != nil {
		return nil, wrap("create schema_migrations", err)
	}
	for _, m := range migrations {
		done, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// applyMigration applies m unless it is recorded as applied. The check runs
// in the same transaction, so two processes migrating at once cannot both
// apply it.
func (s *Store) applyMigration(ctx context.Context, m migration) (done bool, err error) {
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		var n int
		const exists = `SELECT count(*) FROM schema_migrations WHERE version = ?`
		if err := tx.QueryRowContext(ctx, exists, m.version).Scan(&n); err != nil {
			return wrap("check migration", err)
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return wrap("apply migration "+m.name, err)
		}
		const record = `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`
		if _, err := tx.ExecContext(ctx, record, m.version, micros(time.Now())); err != nil {
			return wrap("record migration "+m.name, err)
		}
		done = true
		return nil
	})
	return done, err
}

// loadMigrations reads the embedded migrations, named NNNN_description.sql,
// sorted by version.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	seen := make(map[int]string)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name does not start with a version number", base)
		}
		if other, ok := seen[version]; ok {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, base, version)
		}
		seen[version] = base
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: version, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// PendingMigrations returns the embedded migrations the database lacks.
func (s *Store) PendingMigrations(ctx context.Context) ([]int, error) {
	migrations, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	rows, err := s.reader.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			rows = nil
		} else {
			return nil, wrap("read applied migrations", err)
		}
	}
	if rows != nil {
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return nil, wrap("read applied migrations", err)
			}
			done[v] = true
		}
		if err := rows.Err(); err != nil {
			return nil, wrap("read applied migrations", err)
		}
	}
	pending := []int{}
	for _, m := range migrations {
		if !done[m.version] {
			pending = append(pending, m.version)
		}
	}
	return pending, nil
}
