package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// CreateAdminToken stores t and sets t.ID.
func (s *Store) CreateAdminToken(ctx context.Context, t *iotflow.AdminToken) error {
	const q = `INSERT INTO admin_tokens (name, token_prefix, token_hash, created_at)
		VALUES (?, ?, ?, ?)
		RETURNING id`
	var id int64
	err := s.writer.QueryRowContext(ctx, q, t.Name, t.Prefix, t.Hash, micros(t.CreatedAt)).Scan(&id)
	if isUnique(err) {
		return iotflow.Errorf(iotflow.ECONFLICT, "Admin token already exists",
			"An admin token named %q already exists", t.Name)
	} else if err != nil {
		return wrap("insert admin token", err)
	}
	t.ID = id
	return nil
}

// AdminTokenByHash returns the admin token with that hash.
func (s *Store) AdminTokenByHash(ctx context.Context, hash string) (*iotflow.AdminToken, error) {
	const q = `SELECT id, name, token_prefix, token_hash, created_at FROM admin_tokens WHERE token_hash = ?`
	var t iotflow.AdminToken
	var created int64
	err := s.reader.QueryRowContext(ctx, q, hash).Scan(&t.ID, &t.Name, &t.Prefix, &t.Hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.Errorf(iotflow.ENOTFOUND, "Admin token not found", "No admin token has that hash")
	} else if err != nil {
		return nil, wrap("select admin token", err)
	}
	t.CreatedAt = fromMicros(created)
	return &t, nil
}

// CountAdminTokens returns the number of stored admin tokens.
func (s *Store) CountAdminTokens(ctx context.Context) (int64, error) {
	var n int64
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM admin_tokens`).Scan(&n); err != nil {
		return 0, wrap("count admin tokens", err)
	}
	return n, nil
}
