package iotflow

import (
	"context"
	"time"
)

// Store is the persistence contract that every storage backend fulfils.
// It holds no business rules: callers validate input, generate and hash
// secrets and decide what is online. Every method honours ctx's deadline.
//
// Times go in and come out in UTC with microsecond precision; callers
// truncate them with Truncate before storing so that every backend returns
// exactly what it was given. A backend that cannot reach its database
// returns an error with code EUNAVAILABLE.
type Store interface {
	// CreateDevice inserts d and its first API key in one transaction. It
	// sets d.ID, key.ID and key.DeviceID; d.CreatedAt, d.UpdatedAt and
	// key.CreatedAt are stored as given. Returns ECONFLICT when a device of
	// that name exists (names compare exactly, case-sensitively).
	CreateDevice(ctx context.Context, d *Device, key *APIKey) error

	// Device returns the device with the given id, or ENOTFOUND.
	Device(ctx context.Context, id int64) (*Device, error)

	// DeviceByName returns the device with exactly that name, or ENOTFOUND.
	DeviceByName(ctx context.Context, name string) (*Device, error)

	// DeviceByKeyHash returns the key whose Hash equals hash, whatever its
	// state (inactive, expired or revoked), and its device; ENOTFOUND when
	// no key has that hash.
	DeviceByKeyHash(ctx context.Context, hash string) (*Device, *APIKey, error)

	// CreateAPIKey stores a further key of the device key.DeviceID, every
	// field as given, and sets key.ID. Returns ENOTFOUND when the device
	// does not exist and ECONFLICT when a key with that Hash exists.
	CreateAPIKey(ctx context.Context, key *APIKey) error

	// APIKeys returns every key of the device, active, expired and revoked
	// alike, oldest (CreatedAt, then ID) first; an empty slice for a device
	// without keys or an unknown device. Like every APIKey they carry only
	// the Hash and Prefix, never a secret.
	APIKeys(ctx context.Context, deviceID int64) ([]*APIKey, error)

	// RevokeAPIKey sets the key's Active to false and, unless it is revoked
	// already (revoking again keeps the first time), its RevokedAt to at;
	// it returns the key. ENOTFOUND when the device has no key keyID.
	RevokeAPIKey(ctx context.Context, deviceID, keyID int64, at time.Time) (*APIKey, error)

	// ExpireAPIKey sets the key's ExpiresAt to at when it has no expiry or
	// a later one, never extending it: a rotated key keeps working until at.
	// Returns the key; ENOTFOUND when the device has no key keyID.
	ExpireAPIKey(ctx context.Context, deviceID, keyID int64, at time.Time) (*APIKey, error)

	// RecordKeyUsage adds each key's Count to its UsageCount and sets its
	// LastUsedAt to the later of the stored value and LastUsed (a zero
	// LastUsed leaves it), in one transaction for the whole map. Unknown
	// ids are ignored; an empty map is a no-op.
	RecordKeyUsage(ctx context.Context, usage map[int64]KeyUsage) error

	// ListDevices returns one page of the devices that match f, newest
	// (CreatedAt, then ID) first, and the number of devices that match f in
	// all. Search matches a case-insensitive substring of the name; '%' and
	// '_' in it are literal characters.
	ListDevices(ctx context.Context, f DeviceFilter) ([]*Device, int64, error)

	// UpdateDevice applies the non-nil fields of u and sets UpdatedAt to
	// updatedAt. Returns the updated device, ENOTFOUND, or ECONFLICT when the
	// new name is taken by another device.
	UpdateDevice(ctx context.Context, id int64, u DeviceUpdate, updatedAt time.Time) (*Device, error)

	// DeleteDevice deletes the device with its keys and readings and returns
	// it as it was; ENOTFOUND when there is none.
	DeleteDevice(ctx context.Context, id int64) (*Device, error)

	// TouchDevices records when devices were last seen: for each id, LastSeen
	// becomes the later of its stored value and the given time. Unknown ids
	// are ignored. One transaction for the whole map.
	TouchDevices(ctx context.Context, seen map[int64]time.Time) error

	// MarkOffline records when devices' connections ended (an MQTT
	// disconnect): for each id, OfflineAt becomes the later of its stored
	// value and the given time, and the device counts as offline until it
	// is seen after it. Unknown ids are ignored. One transaction.
	MarkOffline(ctx context.Context, offline map[int64]time.Time) error

	// InsertReadings stores the readings in one transaction and sets their
	// IDs, increasing as in the slice; it raises each device's
	// TelemetryCount by its number of new readings. A reading whose
	// MessageID its device has stored already, or that an earlier reading
	// of rs carries, is not stored again: it gets the stored reading's ID
	// and Timestamp and Duplicate is set. Either all are stored or none;
	// ENOTFOUND when a device does not exist.
	InsertReadings(ctx context.Context, rs []*Reading) error

	// ListReadings returns one page of the readings that match f, newest
	// (Timestamp, then ID) first or, with f.Ascending, oldest first, with
	// DeviceName filled in.
	ListReadings(ctx context.Context, f ReadingFilter) ([]*Reading, error)

	// CountReadings returns how many readings match f (Limit and Offset are
	// ignored).
	CountReadings(ctx context.Context, f ReadingFilter) (int64, error)

	// ReadingStats summarises the readings of one device; zero values for an
	// unknown device or one without readings.
	ReadingStats(ctx context.Context, deviceID int64) (ReadingStats, error)

	// Dashboard returns fleet-wide figures: devices by status, devices seen
	// at or after onlineSince, all readings, readings with Timestamp at or
	// after recentSince, and devices by type.
	Dashboard(ctx context.Context, onlineSince, recentSince time.Time) (*DashboardStats, error)

	// UnrolledReadings returns, lowest id first, at most limit of the
	// readings the rollups do not cover yet: those with an id above the
	// watermark, from. Every reading with an id at or below upTo is among
	// them or was before: upTo is the last one's id when limit were
	// returned, else an id no uncommitted reading lies below.
	UnrolledReadings(ctx context.Context, limit int) (from, upTo int64, rs []*Reading, err error)

	// ApplyRollups merges u's rollups and key states into the stored ones
	// (counts and sums added, the first and last kept by time then id, a
	// key state replaced only by a newer one) and moves the watermark from
	// u.From to u.UpTo, in one transaction. ECONFLICT, changing nothing,
	// when the watermark is no longer u.From; what names a device that no
	// longer exists is dropped.
	ApplyRollups(ctx context.Context, u RollupUpdate) error

	// SeriesData reads what q needs in one snapshot (see SeriesData).
	SeriesData(ctx context.Context, q SeriesQuery) (*SeriesData, error)

	// DeviceKeys returns, in one snapshot, the stored key states of a
	// device and its readings the rollups do not cover yet, which may hold
	// newer values and new keys.
	DeviceKeys(ctx context.Context, deviceID int64) ([]KeyState, []*Reading, error)

	// DeleteReadingsBefore deletes at most limit of the readings with a
	// Timestamp before cutoff, oldest first, lowering the devices' counts
	// and the hourly counts with them, and every rollup of a bucket
	// before cutoff, which is a whole UTC hour. It returns how many
	// readings it deleted: 0 when none is left before cutoff.
	DeleteReadingsBefore(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// CreateCommand stores c as pending, raises its device's
	// PendingCommands, and sets c.ID. With an IdempotencyKey the device
	// has a command of already, it stores nothing, fills c with that
	// command and returns false. ENOTFOUND when the device does not exist.
	CreateCommand(ctx context.Context, c *Command) (created bool, err error)

	// Command returns the command with the given id, or ENOTFOUND.
	Command(ctx context.Context, id int64) (*Command, error)

	// ListCommands returns the commands that match f, newest (by id) first.
	ListCommands(ctx context.Context, f CommandFilter) ([]*Command, error)

	// TakeCommands marks at most limit of the device's pending commands
	// that have not expired at now as sent at now, lowering its
	// PendingCommands, and returns them oldest first. Two calls never take
	// the same command.
	TakeCommands(ctx context.Context, deviceID int64, now time.Time, limit int) ([]*Command, error)

	// AnswerCommand records a device's answer to its command id: in any
	// state that has not ended (an answer may overtake the delivery),
	// acknowledged sets AcknowledgedAt, completed and failed end the
	// command with the result. The same final answer again changes
	// nothing and returns the command; another after the end is
	// ECONFLICT; a command of another device, or none, ENOTFOUND.
	AnswerCommand(ctx context.Context, deviceID, id int64, a CommandAnswer) (*Command, error)

	// CancelCommand ends a command that has not ended as cancelled at now;
	// ECONFLICT when it has ended, ENOTFOUND when there is none.
	CancelCommand(ctx context.Context, id int64, now time.Time) (*Command, error)

	// SweepCommands ends, at now, the commands whose time to live has
	// passed (expired) and those sent whose timeout has passed without an
	// answer (timed_out), and returns them. Several nodes may sweep at
	// once: each command is ended once.
	SweepCommands(ctx context.Context, now time.Time) ([]*Command, error)

	// CommandCounts returns how many commands are in each state.
	CommandCounts(ctx context.Context) (map[string]int64, error)

	// Shadow returns the device's shadow: empty documents at version 0
	// when it has none yet; ENOTFOUND when the device does not exist.
	Shadow(ctx context.Context, deviceID int64) (*Shadow, error)

	// SaveShadow stores sh when the stored version is still prev, and sets
	// the device's ShadowVersion to sh.DesiredVersion; ECONFLICT, changing
	// nothing, when another change came first; ENOTFOUND without the
	// device.
	SaveShadow(ctx context.Context, sh *Shadow, prev int64) error

	// CreateAdminToken stores t and sets t.ID; ECONFLICT when its name is taken.
	CreateAdminToken(ctx context.Context, t *AdminToken) error

	// AdminTokenByHash returns the admin token with that hash, or ENOTFOUND.
	AdminTokenByHash(ctx context.Context, hash string) (*AdminToken, error)

	// CountAdminTokens returns the number of stored admin tokens.
	CountAdminTokens(ctx context.Context) (int64, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error

	// PendingMigrations returns the versions of the migrations this build
	// carries that the database has not applied, oldest first; empty when
	// the schema is up to date.
	PendingMigrations(ctx context.Context) ([]int, error)

	// Close releases the store's resources.
	Close() error
}

// Truncate returns t in UTC with microsecond precision, the precision every
// backend stores.
func Truncate(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// The capabilities a store may have beyond Store. Both stores migrate and
// report their pools; only a networked database can become unreachable.
type (
	// Migrator applies the migrations of its schema that the database
	// lacks and returns their versions.
	Migrator interface {
		Migrate(ctx context.Context) ([]int, error)
	}
	// PoolReporter reports its connection pools, for metrics.
	PoolReporter interface {
		PoolStats() []PoolStats
	}
	// Prober can be found unreachable: Probe checks the database over a
	// connection of its own, outside the pool, and ResetConnections drops
	// the pool's connections, which on a silent network would hang.
	Prober interface {
		Probe(ctx context.Context) error
		ResetConnections()
	}
)

// PoolStats describes one of a store's database connection pools, for
// metrics.
type PoolStats struct {
	Name         string // which pool: "postgres", "sqlite_writer", "sqlite_reader"
	Open         int    // connections open
	InUse        int    // connections lent out
	Idle         int    // connections open and free
	Max          int    // most connections the pool opens
	WaitCount    int64  // acquisitions that had to wait, since start
	WaitDuration time.Duration
}
