package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// keyColumns are the columns of device_auth that keyRow scans, in its order.
const keyColumns = `id, device_id, key_prefix, api_key_hash, is_active,
	created_at, expires_at, last_used_at, usage_count, revoked_at`

// insertKeySQL stores one key, every field as given; CreateDevice uses it too.
const insertKeySQL = `INSERT INTO device_auth (device_id, api_key_hash, key_prefix, is_active,
		created_at, expires_at, last_used_at, usage_count, revoked_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	RETURNING id`

// insertKeyArgs returns the arguments of insertKeySQL for key of the device.
func insertKeyArgs(deviceID int64, key *iotflow.APIKey) []any {
	return []any{deviceID, key.Hash, key.Prefix, key.Active, micros(key.CreatedAt),
		nullMicros(key.ExpiresAt), nullMicros(key.LastUsedAt), key.UsageCount, nullMicros(key.RevokedAt)}
}

// keyRow holds the time columns of a key while it is scanned.
type keyRow struct {
	created                    int64
	expires, lastUsed, revoked sql.NullInt64
}

// fields returns the scan destinations for keyColumns.
func (r *keyRow) fields(k *iotflow.APIKey) []any {
	return []any{&k.ID, &k.DeviceID, &k.Prefix, &k.Hash, &k.Active,
		&r.created, &r.expires, &r.lastUsed, &k.UsageCount, &r.revoked}
}

// fill copies the scanned times into k.
func (r *keyRow) fill(k *iotflow.APIKey) {
	k.CreatedAt, k.ExpiresAt = fromMicros(r.created), fromNullMicros(r.expires)
	k.LastUsedAt, k.RevokedAt = fromNullMicros(r.lastUsed), fromNullMicros(r.revoked)
}

// scanKey reads a row of keyColumns.
func scanKey(row interface{ Scan(...any) error }) (*iotflow.APIKey, error) {
	var k iotflow.APIKey
	var r keyRow
	if err := row.Scan(r.fields(&k)...); err != nil {
		return nil, err
	}
	r.fill(&k)
	return &k, nil
}

// CreateAPIKey stores a further key of key.DeviceID and sets key.ID.
func (s *Store) CreateAPIKey(ctx context.Context, key *iotflow.APIKey) error {
	var id int64
	err := s.writer.QueryRowContext(ctx, insertKeySQL, insertKeyArgs(key.DeviceID, key)...).Scan(&id)
	switch {
	case isForeignKey(err):
		return iotflow.DeviceNotFound(key.DeviceID)
	case isUnique(err):
		return iotflow.Errorf(iotflow.ECONFLICT, "API key already exists",
			"An API key with that hash already exists")
	case err != nil:
		return wrap("insert api key", err)
	}
	key.ID = id
	return nil
}

// APIKeys returns every key of the device, oldest first.
func (s *Store) APIKeys(ctx context.Context, deviceID int64) ([]*iotflow.APIKey, error) {
	const q = `SELECT ` + keyColumns + ` FROM device_auth WHERE device_id = ? ORDER BY created_at, id`
	rows, err := s.reader.QueryContext(ctx, q, deviceID)
	if err != nil {
		return nil, wrap("list api keys", err)
	}
	defer rows.Close()
	keys := make([]*iotflow.APIKey, 0)
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, wrap("scan api key", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list api keys", err)
	}
	return keys, nil
}

// RevokeAPIKey deactivates the key and records when, keeping the time of
// an earlier revocation.
func (s *Store) RevokeAPIKey(ctx context.Context, deviceID, keyID int64, at time.Time) (*iotflow.APIKey, error) {
	const q = `UPDATE device_auth SET is_active = 0, revoked_at = coalesce(revoked_at, ?)
		WHERE id = ? AND device_id = ?
		RETURNING ` + keyColumns
	k, err := scanKey(s.writer.QueryRowContext(ctx, q, micros(at), keyID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.KeyNotFound(deviceID, keyID)
	}
	return k, wrap("revoke api key", err)
}

// ExpireAPIKey moves the key's expiry to at unless it expires earlier.
func (s *Store) ExpireAPIKey(ctx context.Context, deviceID, keyID int64, at time.Time) (*iotflow.APIKey, error) {
	const q = `UPDATE device_auth SET expires_at = min(coalesce(expires_at, ?1), ?1)
		WHERE id = ?2 AND device_id = ?3
		RETURNING ` + keyColumns
	k, err := scanKey(s.writer.QueryRowContext(ctx, q, micros(at), keyID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.KeyNotFound(deviceID, keyID)
	}
	return k, wrap("expire api key", err)
}

// RecordKeyUsage adds the counts and moves LastUsedAt forward, in one
// transaction; unknown ids are ignored.
func (s *Store) RecordKeyUsage(ctx context.Context, usage map[int64]iotflow.KeyUsage) error {
	if len(usage) == 0 {
		return nil
	}
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		// SQLite's max() is NULL when an argument is: the coalesce keeps
		// whichever of the two times is set.
		const q = `UPDATE device_auth SET usage_count = usage_count + ?1,
			last_used_at = coalesce(max(last_used_at, ?2), last_used_at, ?2)
			WHERE id = ?3`
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return wrap("prepare record key usage", err)
		}
		defer stmt.Close()
		for _, id := range slices.Sorted(maps.Keys(usage)) {
			u := usage[id]
			var last sql.NullInt64
			if !u.LastUsed.IsZero() {
				last = sql.NullInt64{Int64: micros(u.LastUsed), Valid: true}
			}
			if _, err := stmt.ExecContext(ctx, u.Count, last, id); err != nil {
				return wrap("record key usage", err)
			}
		}
		return nil
	})
}
