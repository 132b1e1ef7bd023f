package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// CreateAdminToken stores t and sets t.ID; ECONFLICT when its name is taken.
func (s *Store) CreateAdminToken(ctx context.Context, t *iotflow.AdminToken) error {
	err := s.pool.QueryRow(ctx, `
		INSERT INTO admin_tokens (name, token_prefix, token_hash, created_at)
		VALUES ($1, $2, $3, $4)
		RETURNING id`, t.Name, t.Prefix, t.Hash, t.CreatedAt).Scan(&t.ID)
	if sqlState(err) == codeUniqueViolation {
		return iotflow.Errorf(iotflow.ECONFLICT, "Admin token already exists",
			"An admin token named %q already exists.", t.Name)
	}
	return wrap(ctx, "insert admin token", err)
}

// AdminTokenByHash returns the admin token with that hash, or ENOTFOUND.
func (s *Store) AdminTokenByHash(ctx context.Context, hash string) (*iotflow.AdminToken, error) {
	var t iotflow.AdminToken
	err := s.pool.QueryRow(ctx, `
		SELECT id, name, token_prefix, token_hash, created_at
		FROM admin_tokens
		WHERE token_hash = $1`, hash).Scan(&t.ID, &t.Name, &t.Prefix, &t.Hash, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.Errorf(iotflow.ENOTFOUND, "Admin token not found", "No admin token has that hash.")
	} else if err != nil {
		return nil, wrap(ctx, "get admin token by hash", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return &t, nil
}

// CountAdminTokens returns the number of stored admin tokens.
func (s *Store) CountAdminTokens(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM admin_tokens`).Scan(&n)
	return n, wrap(ctx, "count admin tokens", err)
}
