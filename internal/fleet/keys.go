package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// usageTracker counts key use in memory; the flusher writes it in batches
// with last_seen, so that authenticating writes nothing.
type usageTracker struct {
	mu      sync.Mutex
	pending map[int64]iotflow.KeyUsage
}

func (u *usageTracker) record(keyID int64, at time.Time) {
	u.mu.Lock()
	if u.pending == nil {
		u.pending = map[int64]iotflow.KeyUsage{}
	}
	e := u.pending[keyID]
	e.Count++
	if at.After(e.LastUsed) {
		e.LastUsed = at
	}
	u.pending[keyID] = e
	u.mu.Unlock()
}

// flush writes the counted use; on failure it is kept for the next flush.
func (u *usageTracker) flush(ctx context.Context, store iotflow.Store) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = nil
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := store.RecordKeyUsage(ctx, batch)
	if err != nil {
		u.mu.Lock()
		for id, e := range batch {
			cur := u.pending[id]
			cur.Count += e.Count
			if e.LastUsed.After(cur.LastUsed) {
				cur.LastUsed = e.LastUsed
			}
			if u.pending == nil {
				u.pending = map[int64]iotflow.KeyUsage{}
			}
			u.pending[id] = cur
		}
		u.mu.Unlock()
	}
	return err
}

// RotateKey issues a new key to the device of the current key. The current
// key keeps working for the grace period, or stops at once with revokeOld.
func (s *Service) RotateKey(ctx context.Context, d *iotflow.Device, current *iotflow.APIKey, revokeOld bool) (string, *iotflow.APIKey, *iotflow.APIKey, error) {
	secret, key, err := s.issueKey(ctx, d.ID, nil)
	if err != nil {
		return "", nil, nil, err
	}
	var old *iotflow.APIKey
	if revokeOld {
		old, err = s.store.RevokeAPIKey(ctx, d.ID, current.ID, s.Now())
	} else {
		old, err = s.store.ExpireAPIKey(ctx, d.ID, current.ID, s.Now().Add(s.opts.KeyRotationGrace))
	}
	if err != nil {
		return "", nil, nil, err
	}
	s.auth.forgetKey(current.Hash)
	s.log.Info("audit: device rotated its API key", "device_id", d.ID, "new_key_id", key.ID, "old_key_id", current.ID, "old_revoked", revokeOld)
	return secret, key, old, nil
}

func (s *Service) issueKey(ctx context.Context, deviceID int64, expiresAt *time.Time) (string, *iotflow.APIKey, error) {
	secret, hash, prefix, err := iotflow.NewSecret(iotflow.APIKeyPrefix)
	if err != nil {
		return "", nil, err
	}
	key := &iotflow.APIKey{DeviceID: deviceID, Prefix: prefix, Hash: hash, Active: true, CreatedAt: s.Now(), ExpiresAt: expiresAt}
	if err := s.store.CreateAPIKey(ctx, key); err != nil {
		return "", nil, err
	}
	s.badKeys.forget(hash)
	return secret, key, nil
}

// Keys lists a device's keys, without secrets.
func (s *Service) Keys(ctx context.Context, deviceID int64) ([]*iotflow.APIKey, error) {
	if _, err := s.store.Device(ctx, deviceID); err != nil {
		return nil, err
	}
	if err := s.usage.flush(ctx, s.store); err != nil {
		return nil, err
	}
	return s.store.APIKeys(ctx, deviceID)
}

// IssueKey gives a device a further key, optionally expiring.
func (s *Service) IssueKey(ctx context.Context, who *AdminIdentity, deviceID int64, expiresAt *time.Time) (string, *iotflow.APIKey, error) {
	if expiresAt != nil && !expiresAt.After(s.opts.Now()) {
		return "", nil, iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'expires_at' must lie in the future")
	}
	secret, key, err := s.issueKey(ctx, deviceID, expiresAt)
	if err == nil {
		s.log.Info("audit: API key issued", "token_name", who.TokenName, "token_prefix", who.TokenPrefix,
			"device_id", deviceID, "key_id", key.ID, "key_prefix", key.Prefix)
	}
	return secret, key, err
}

// RevokeKey revokes one key of a device; it is refused at once on this node.
func (s *Service) RevokeKey(ctx context.Context, who *AdminIdentity, deviceID, keyID int64) (*iotflow.APIKey, error) {
	key, err := s.store.RevokeAPIKey(ctx, deviceID, keyID, s.Now())
	if err != nil {
		return nil, err
	}
	s.auth.forgetKey(key.Hash)
	s.log.Info("audit: API key revoked", "token_name", who.TokenName, "token_prefix", who.TokenPrefix,
		"device_id", deviceID, "key_id", keyID, "key_prefix", key.Prefix)
	return key, nil
}
