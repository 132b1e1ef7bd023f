package fleet

import (
	"context"
	"crypto/subtle"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// AdminIdentity names who made an admin request, for audit lines; never
// the token itself.
type AdminIdentity struct {
	TokenID     int64  // 0 for the static token
	TokenName   string // "static" for IOTFLOW_ADMIN_TOKEN
	TokenPrefix string
}

// AuthenticateAdmin checks a bearer token against the static token and the
// stored ones.
func (s *Service) AuthenticateAdmin(ctx context.Context, token string) (*AdminIdentity, error) {
	if token == "" {
		return nil, iotflow.Errorf(iotflow.EUNAUTHORIZED, "Admin token required", "Send an admin token as 'Authorization: Bearer <token>'")
	}
	if st := s.opts.StaticAdminToken; st != "" &&
		subtle.ConstantTimeCompare([]byte(iotflow.HashSecret(token)), []byte(iotflow.HashSecret(st))) == 1 {
		return &AdminIdentity{TokenName: "static", TokenPrefix: iotflow.ShownPrefix(token)}, nil
	}
	hash := iotflow.HashSecret(token)
	if s.badTokens.refused(hash) {
		return nil, errInvalidAdminToken()
	}
	t, err := s.store.AdminTokenByHash(ctx, hash)
	if iotflow.ErrorCode(err) == iotflow.ENOTFOUND || (err == nil && !iotflow.SecretMatches(token, t.Hash)) {
		s.badTokens.add(hash)
		return nil, errInvalidAdminToken()
	} else if err != nil {
		return nil, err
	}
	return &AdminIdentity{TokenID: t.ID, TokenName: t.Name, TokenPrefix: t.Prefix}, nil
}

func errInvalidAdminToken() error {
	return iotflow.Errorf(iotflow.EUNAUTHORIZED, "Invalid admin token", "The admin token is not valid")
}

// CreateAdminToken mints a named admin token, stores its hash and returns
// the secret, shown this once.
func (s *Service) CreateAdminToken(ctx context.Context, name string) (string, *iotflow.AdminToken, error) {
	if name == "" || len(name) > 100 {
		return "", nil, iotflow.Errorf(iotflow.EINVALID, "Validation error", "A token name of 1 to 100 characters is required")
	}
	secret, hash, prefix, err := iotflow.NewSecret(iotflow.AdminTokenPrefix)
	if err != nil {
		return "", nil, err
	}
	t := &iotflow.AdminToken{Name: name, Prefix: prefix, Hash: hash, CreatedAt: s.Now()}
	if err := s.store.CreateAdminToken(ctx, t); err != nil {
		if iotflow.ErrorCode(err) == iotflow.ECONFLICT {
			return "", nil, iotflow.Errorf(iotflow.ECONFLICT, "Token name taken", "An admin token named %q exists", name)
		}
		return "", nil, err
	}
	s.badTokens.forget(hash)
	s.log.Info("audit: admin token created", "token_id", t.ID, "token_name", name, "token_prefix", prefix)
	return secret, t, nil
}

// EnsureAdminToken mints the "initial" admin token when no static token is
// configured and none is stored. It returns the secret when it minted one.
// Several nodes starting at once mint at most one: the name is unique.
func (s *Service) EnsureAdminToken(ctx context.Context) (string, error) {
	if s.opts.StaticAdminToken != "" {
		return "", nil
	}
	n, err := s.store.CountAdminTokens(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	secret, _, err := s.CreateAdminToken(ctx, "initial")
	if iotflow.ErrorCode(err) == iotflow.ECONFLICT {
		return "", nil
	}
	return secret, err
}

// DeviceView is a device with the figures the API shows beside it.
type DeviceView struct {
	*iotflow.Device
	IsOnline bool
}

// ListDevices returns one page of devices and the total that match f.
func (s *Service) ListDevices(ctx context.Context, f iotflow.DeviceFilter) ([]DeviceView, int64, error) {
	ds, total, err := s.store.ListDevices(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	views := make([]DeviceView, len(ds))
	for i, d := range ds {
		s.seen.overlay(d)
		views[i] = DeviceView{Device: d, IsOnline: s.IsOnline(d)}
	}
	return views, total, nil
}

// DeviceDetail is the admin view of one device.
type DeviceDetail struct {
	DeviceView
	Stats  iotflow.ReadingStats
	Recent []*iotflow.Reading
}

// Device returns the detail of device id: statistics and up to ten newest readings.
func (s *Service) Device(ctx context.Context, id int64) (*DeviceDetail, error) {
	d, err := s.store.Device(ctx, id)
	if err != nil {
		return nil, err
	}
	s.seen.overlay(d)
	stats, err := s.store.ReadingStats(ctx, id)
	if err != nil {
		return nil, err
	}
	recent, err := s.store.ListReadings(ctx, iotflow.ReadingFilter{DeviceID: id, Limit: 10})
	if err != nil {
		return nil, err
	}
	return &DeviceDetail{DeviceView: DeviceView{Device: d, IsOnline: s.IsOnline(d)}, Stats: stats, Recent: recent}, nil
}

// UpdateDevice applies an admin's update to device id.
func (s *Service) UpdateDevice(ctx context.Context, who *AdminIdentity, id int64, u iotflow.DeviceUpdate) (*iotflow.Device, error) {
	d, err := s.updateDevice(ctx, id, u)
	if err == nil {
		s.log.Info("audit: device updated", "token_name", who.TokenName, "token_prefix", who.TokenPrefix, "device_id", id)
	}
	return d, err
}

// DeleteDevice deletes device id with its keys and readings.
func (s *Service) DeleteDevice(ctx context.Context, who *AdminIdentity, id int64) (*iotflow.Device, error) {
	d, err := s.store.DeleteDevice(ctx, id)
	if err != nil {
		return nil, err
	}
	s.seen.forget(id)
	s.auth.forgetDevice(id)
	s.log.Info("audit: device deleted", "token_name", who.TokenName, "token_prefix", who.TokenPrefix, "device_id", id, "device_name", d.Name)
	return d, nil
}

// Dashboard returns the fleet-wide figures. Kept last_seen times are
// flushed first so the online count is exact.
func (s *Service) Dashboard(ctx context.Context) (*iotflow.DashboardStats, error) {
	if err := s.seen.flush(ctx); err != nil {
		return nil, err
	}
	now := s.opts.Now()
	return s.store.Dashboard(ctx, iotflow.Truncate(now.Add(-s.opts.OnlineTimeout)), iotflow.Truncate(now.Add(-24*time.Hour)))
}
