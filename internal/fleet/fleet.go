// Package fleet holds the business rules of IoTFlow above the store:
// registration, device and admin authentication, telemetry, and the admin
// views. The HTTP layer calls it and knows no SQL; the stores know no rules.
package fleet

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Options configure a Service. The settings come from the configuration
// (config.Settings holds their defaults); zero is taken as given.
type Options struct {
	OnlineTimeout time.Duration
	// StaticAdminToken, when set, is accepted beside stored admin tokens.
	StaticAdminToken string
	Logger           *slog.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// Submitter stores readings; nil stores them directly, one
	// transaction per request. An *ingest.Pipeline batches them.
	Submitter Submitter
	// MaxClockSkew is how far in the future a device timestamp may lie.
	MaxClockSkew time.Duration
	// AuthCacheSize and AuthCacheTTL bound the in-memory caches of API
	// keys, and of the wrong keys and admin tokens; a size of 0 disables
	// them.
	AuthCacheSize int
	AuthCacheTTL  time.Duration
	// KeyRotationGrace is how long a rotated key keeps working.
	KeyRotationGrace time.Duration
	// Retention is how long readings are kept (0: forever); a reading
	// older than that is refused rather than stored to be removed.
	Retention time.Duration
}

// Submitter stores readings and returns once they are committed.
type Submitter interface {
	Submit(ctx context.Context, rs []*iotflow.Reading) error
}

// Service implements IoTFlow's use cases on a Store.
type Service struct {
	store iotflow.Store
	seen  *seenTracker
	auth  *authCache
	// badKeys and badTokens are the hashes of API keys and admin tokens
	// the store did not know, kept apart so that a device key sent as an
	// admin token is not refused as a device key.
	badKeys, badTokens *negativeCache
	negativeHits       atomic.Uint64
	usage              usageTracker
	opts               Options
	log                *slog.Logger
}

// New returns a Service on store.
func New(store iotflow.Store, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Submitter == nil {
		opts.Submitter = directSubmitter{store}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, seen: newSeenTracker(store), auth: newAuthCache(opts.AuthCacheSize, opts.AuthCacheTTL),
		opts: opts, log: log}
	s.badKeys = newNegativeCache(opts.AuthCacheSize, opts.AuthCacheTTL, &s.negativeHits)
	s.badTokens = newNegativeCache(opts.AuthCacheSize, opts.AuthCacheTTL, &s.negativeHits)
	return s
}

// directSubmitter stores each request's readings in a transaction of its own.
type directSubmitter struct{ store iotflow.Store }

func (d directSubmitter) Submit(ctx context.Context, rs []*iotflow.Reading) error {
	return d.store.InsertReadings(ctx, rs)
}

// Store returns the underlying store.
func (s *Service) Store() iotflow.Store { return s.store }

// Now returns the service's current time, truncated to stored precision.
func (s *Service) Now() time.Time { return iotflow.Truncate(s.opts.Now()) }

// IsOnline applies the online rule to d at the current time.
func (s *Service) IsOnline(d *iotflow.Device) bool {
	return d.IsOnline(s.opts.Now(), s.opts.OnlineTimeout)
}

// RunFlusher writes kept last_seen times and key usage every interval
// until ctx ends. On shutdown, call FlushSeen once it has returned, with
// the time left, so that nothing kept is lost.
func (s *Service) RunFlusher(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.FlushSeen(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("last_seen or key usage flush failed; will retry", "err", err)
			}
		}
	}
}

// FlushSeen writes kept last_seen times and key usage now.
func (s *Service) FlushSeen(ctx context.Context) error {
	return errors.Join(s.seen.flush(ctx), s.usage.flush(ctx, s.store))
}

// Register creates a device and returns it with its API key, which is
// shown this once and stored only as a hash.
func (s *Service) Register(ctx context.Context, n iotflow.NewDevice) (*iotflow.Device, string, error) {
	n.Normalize()
	if err := n.Validate(); err != nil {
		return nil, "", err
	}
	secret, hash, prefix, err := iotflow.NewSecret(iotflow.APIKeyPrefix)
	if err != nil {
		return nil, "", err
	}
	now := s.Now()
	d := &iotflow.Device{
		Name: n.Name, Description: n.Description, DeviceType: n.DeviceType,
		Status: iotflow.StatusActive, Location: n.Location,
		FirmwareVersion: n.FirmwareVersion, HardwareVersion: n.HardwareVersion,
		CreatedAt: now, UpdatedAt: now,
	}
	key := &iotflow.APIKey{Prefix: prefix, Hash: hash, Active: true, CreatedAt: now}
	if err := s.store.CreateDevice(ctx, d, key); err != nil {
		if iotflow.ErrorCode(err) == iotflow.ECONFLICT {
			return nil, "", iotflow.Errorf(iotflow.ECONFLICT, "Device already exists", "A device named %q is already registered", n.Name)
		}
		return nil, "", err
	}
	s.badKeys.forget(hash)
	s.log.Info("device registered", "device_id", d.ID, "key_prefix", prefix)
	return d, secret, nil
}

// Authenticate returns the active device that owns apiKey and records that
// it was seen. Missing or unknown keys give EUNAUTHORIZED, a device that is
// not active EFORBIDDEN. Recently used keys, and recently refused unknown
// ones, are answered from memory.
func (s *Service) Authenticate(ctx context.Context, apiKey string) (*iotflow.Device, error) {
	d, _, err := s.AuthenticateKey(ctx, apiKey)
	return d, err
}

// AuthenticateKey is Authenticate that also returns the key used.
func (s *Service) AuthenticateKey(ctx context.Context, apiKey string) (*iotflow.Device, *iotflow.APIKey, error) {
	if apiKey == "" {
		return nil, nil, iotflow.Errorf(iotflow.EUNAUTHORIZED, "API key required", "Send the device API key in the X-API-Key header")
	}
	hash := iotflow.HashSecret(apiKey)
	d, key, ok := s.auth.get(hash)
	if !ok {
		if s.badKeys.refused(hash) {
			return nil, nil, errUnknownKey()
		}
		s.auth.miss()
		generation := s.auth.begin()
		var err error
		d, key, err = s.store.DeviceByKeyHash(ctx, hash)
		if iotflow.ErrorCode(err) == iotflow.ENOTFOUND {
			s.badKeys.add(hash)
			return nil, nil, errUnknownKey()
		} else if err != nil {
			return nil, nil, err
		}
		s.auth.put(d, key, generation)
	}
	now := s.opts.Now()
	if !iotflow.HashMatches(hash, key.Hash) || !key.Usable(now) {
		return nil, nil, iotflow.Errorf(iotflow.EUNAUTHORIZED, "Invalid API key", "The API key is not valid, or was revoked or has expired")
	}
	if d.Status != iotflow.StatusActive {
		return nil, nil, iotflow.Errorf(iotflow.EFORBIDDEN, "Device is not active", "Device status is %q; only active devices may use the API", d.Status)
	}
	at := iotflow.Truncate(now)
	s.seen.mark(d.ID, at)
	s.usage.record(key.ID, at)
	s.seen.overlay(d)
	return d, key, nil
}

func errUnknownKey() error {
	return iotflow.Errorf(iotflow.EUNAUTHORIZED, "Invalid API key", "The API key is not valid")
}

// DeviceStatus returns the current state of an authenticated device, with
// its telemetry count, read afresh.
func (s *Service) DeviceStatus(ctx context.Context, d *iotflow.Device) (*DeviceView, error) {
	fresh, err := s.store.Device(ctx, d.ID)
	if iotflow.ErrorCode(err) == iotflow.ENOTFOUND {
		return nil, iotflow.Errorf(iotflow.EUNAUTHORIZED, "Invalid API key", "The device no longer exists")
	} else if err != nil {
		return nil, err
	}
	s.seen.overlay(fresh)
	return &DeviceView{Device: fresh, IsOnline: s.IsOnline(fresh)}, nil
}

// Heartbeat records that d is alive and returns the time recorded.
func (s *Service) Heartbeat(ctx context.Context, d *iotflow.Device) time.Time {
	now := s.Now()
	s.seen.mark(d.ID, now)
	return now
}

// Disconnected records that device id's connection (MQTT) ended now: it
// is seen now and offline from now until it is seen again. It is kept in
// memory and written with the last_seen times (IOTFLOW_LAST_SEEN_FLUSH),
// so that 10,000 devices dropping at once cost one transaction; other
// nodes see it once written.
func (s *Service) Disconnected(id int64) {
	s.seen.markOffline(id, s.Now())
}

// UpdateOwnConfig applies a device's update of its own status, location and
// versions.
func (s *Service) UpdateOwnConfig(ctx context.Context, d *iotflow.Device, u iotflow.DeviceUpdate) (*iotflow.Device, error) {
	u.Name, u.Description = nil, nil
	return s.updateDevice(ctx, d.ID, u)
}

func (s *Service) updateDevice(ctx context.Context, id int64, u iotflow.DeviceUpdate) (*iotflow.Device, error) {
	u.Normalize()
	if err := u.Validate(); err != nil {
		return nil, err
	}
	d, err := s.store.UpdateDevice(ctx, id, u, s.Now())
	if err != nil {
		// A refused update changed nothing, and one whose outcome is
		// unknown (the database went away) is bounded by the cache's TTL
		// like a change made on another node: keeping the device's keys
		// keeps what needs no database, such as heartbeats, working
		// through an outage.
		switch iotflow.ErrorCode(err) {
		case iotflow.ECONFLICT:
			return nil, iotflow.Errorf(iotflow.ECONFLICT, "Device name already exists", "Another device is named %q", *u.Name)
		case iotflow.ENOTFOUND:
			s.auth.forgetDevice(id)
		}
		return nil, err
	}
	s.auth.forgetDevice(id)
	s.seen.overlay(d)
	return d, nil
}

// ForgetDevice drops the device from the key cache, so that the next
// request reads it afresh: for a change made outside this service, such
// as a command for the device, on this node or another.
func (s *Service) ForgetDevice(id int64) { s.auth.forgetDevice(id) }

// AuthCacheStats reports the API key cache's hits, misses and size (zeros
// when the cache is off) and the secrets refused from memory.
func (s *Service) AuthCacheStats() AuthCacheStats {
	st := s.auth.stats()
	st.NegativeHits = s.negativeHits.Load()
	return st
}
