package postgres

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// keyColumns are the columns keyDest scans, in its order; queries alias
// device_auth as k.
const keyColumns = `k.id, k.device_id, k.key_prefix, k.api_key_hash, k.is_active,
	k.created_at, k.expires_at, k.last_used_at, k.usage_count, k.revoked_at`

// insertKeySQL stores one key, every field as given; CreateDevice uses it too.
const insertKeySQL = `
	INSERT INTO device_auth (device_id, api_key_hash, key_prefix, is_active, created_at,
		expires_at, last_used_at, usage_count, revoked_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
	RETURNING id`

// insertKeyArgs returns the arguments of insertKeySQL for key of the device.
func insertKeyArgs(deviceID int64, key *iotflow.APIKey) []any {
	return []any{deviceID, key.Hash, key.Prefix, key.Active, key.CreatedAt,
		key.ExpiresAt, key.LastUsedAt, key.UsageCount, key.RevokedAt}
}

// keyDest returns the scan destinations of keyColumns in k.
func keyDest(k *iotflow.APIKey) []any {
	return []any{&k.ID, &k.DeviceID, &k.Prefix, &k.Hash, &k.Active,
		&k.CreatedAt, &k.ExpiresAt, &k.LastUsedAt, &k.UsageCount, &k.RevokedAt}
}

// keyUTC puts the scanned times of k in UTC.
func keyUTC(k *iotflow.APIKey) {
	k.CreatedAt, k.ExpiresAt = k.CreatedAt.UTC(), utcPtr(k.ExpiresAt)
	k.LastUsedAt, k.RevokedAt = utcPtr(k.LastUsedAt), utcPtr(k.RevokedAt)
}

// scanKey scans one row of keyColumns.
func scanKey(row pgx.Row) (*iotflow.APIKey, error) {
	var k iotflow.APIKey
	if err := row.Scan(keyDest(&k)...); err != nil {
		return nil, err
	}
	keyUTC(&k)
	return &k, nil
}

// CreateAPIKey stores a further key of key.DeviceID and sets key.ID;
// ENOTFOUND without that device, ECONFLICT when the hash is taken.
func (s *Store) CreateAPIKey(ctx context.Context, key *iotflow.APIKey) error {
	var id int64
	err := s.pool.QueryRow(ctx, insertKeySQL, insertKeyArgs(key.DeviceID, key)...).Scan(&id)
	switch sqlState(err) {
	case codeForeignKeyViolation:
		return iotflow.DeviceNotFound(key.DeviceID)
	case codeUniqueViolation:
		return iotflow.Errorf(iotflow.ECONFLICT, "API key already exists",
			"An API key with that hash already exists.")
	}
	if err != nil {
		return wrap(ctx, "insert api key", err)
	}
	key.ID = id
	return nil
}

// APIKeys returns every key of the device, oldest first.
func (s *Store) APIKeys(ctx context.Context, deviceID int64) ([]*iotflow.APIKey, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT `+keyColumns+` FROM device_auth AS k
		WHERE k.device_id = $1
		ORDER BY k.created_at, k.id`, deviceID)
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*iotflow.APIKey, error) {
		return scanKey(row)
	})
	if err != nil {
		return nil, wrap(ctx, "list api keys", err)
	}
	return keys, nil
}

// RevokeAPIKey deactivates the key and records when, keeping the time of
// an earlier revocation.
func (s *Store) RevokeAPIKey(ctx context.Context, deviceID, keyID int64, at time.Time) (*iotflow.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `
		UPDATE device_auth AS k SET is_active = false, revoked_at = coalesce(k.revoked_at, $3)
		WHERE k.id = $1 AND k.device_id = $2
		RETURNING `+keyColumns, keyID, deviceID, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.KeyNotFound(deviceID, keyID)
	}
	return k, wrap(ctx, "revoke api key", err)
}

// ExpireAPIKey moves the key's expiry to at unless it expires earlier.
func (s *Store) ExpireAPIKey(ctx context.Context, deviceID, keyID int64, at time.Time) (*iotflow.APIKey, error) {
	// LEAST ignores NULL: a key without expiry gets at.
	k, err := scanKey(s.pool.QueryRow(ctx, `
		UPDATE device_auth AS k SET expires_at = LEAST(k.expires_at, $3)
		WHERE k.id = $1 AND k.device_id = $2
		RETURNING `+keyColumns, keyID, deviceID, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.KeyNotFound(deviceID, keyID)
	}
	return k, wrap(ctx, "expire api key", err)
}

// RecordKeyUsage adds the counts and moves LastUsedAt forward, in one
// transaction; unknown ids are ignored.
func (s *Store) RecordKeyUsage(ctx context.Context, usage map[int64]iotflow.KeyUsage) error {
	if len(usage) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(usage))
	counts, last := make([]int64, len(ids)), make([]*time.Time, len(ids))
	for i, id := range ids {
		u := usage[id]
		counts[i] = u.Count
		if !u.LastUsed.IsZero() {
			last[i] = &u.LastUsed
		}
	}
	// Two statements in one round trip and one implicit transaction. The
	// first locks the rows in id order, for the reasons TouchDevices
	// gives, so that flushes of several nodes wait for each other instead
	// of deadlocking. GREATEST ignores NULL, so a zero LastUsed keeps the
	// stored time and a first use sets it.
	b := &pgx.Batch{}
	b.Queue(`SELECT id FROM device_auth WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, ids)
	b.Queue(`
		UPDATE device_auth AS k SET usage_count = k.usage_count + v.n,
			last_used_at = GREATEST(k.last_used_at, v.t)
		FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS v(id, n, t)
		WHERE k.id = v.id`, ids, counts, last)
	return wrap(ctx, "record key usage", s.pool.SendBatch(ctx, b).Close())
}
