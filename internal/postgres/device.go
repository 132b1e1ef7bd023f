package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// deviceColumns are the columns deviceRow scans, in its order; queries
// alias devices as d.
const deviceColumns = `d.id, d.name, d.description, d.device_type, d.status, d.location,
	d.firmware_version, d.hardware_version, d.created_at, d.updated_at, d.last_seen, d.telemetry_count,
	d.pending_commands, d.shadow_version, d.offline_at`

// deviceRow receives deviceColumns; the optional strings may be NULL.
type deviceRow struct {
	d                                         iotflow.Device
	description, location, firmware, hardware pgtype.Text
}

func (r *deviceRow) dest() []any {
	return []any{&r.d.ID, &r.d.Name, &r.description, &r.d.DeviceType, &r.d.Status, &r.location,
		&r.firmware, &r.hardware, &r.d.CreatedAt, &r.d.UpdatedAt, &r.d.LastSeen, &r.d.TelemetryCount,
		&r.d.PendingCommands, &r.d.ShadowVersion, &r.d.OfflineAt}
}

func (r *deviceRow) device() *iotflow.Device {
	d := r.d
	d.Description, d.Location = r.description.String, r.location.String
	d.FirmwareVersion, d.HardwareVersion = r.firmware.String, r.hardware.String
	d.CreatedAt, d.UpdatedAt, d.LastSeen = d.CreatedAt.UTC(), d.UpdatedAt.UTC(), utcPtr(d.LastSeen)
	d.OfflineAt = utcPtr(d.OfflineAt)
	return &d
}

// scanDevice scans one row of deviceColumns.
func scanDevice(row pgx.Row) (*iotflow.Device, error) {
	var r deviceRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.device(), nil
}

// nameTaken turns a unique violation of devices.name into ECONFLICT.
func nameTaken(err error, name string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation && pgErr.ConstraintName == "devices_name_key" {
		return iotflow.Errorf(iotflow.ECONFLICT, "Device name already exists",
			"A device named %q already exists.", name)
	}
	return nil
}

// CreateDevice inserts d and its first API key in one transaction.
func (s *Store) CreateDevice(ctx context.Context, d *iotflow.Device, key *iotflow.APIKey) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(ctx, "create device: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var deviceID, keyID int64
	err = tx.QueryRow(ctx, `
		INSERT INTO devices (name, name_folded, description, device_type, status, location,
			firmware_version, hardware_version, created_at, updated_at, last_seen)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		RETURNING id`,
		d.Name, strings.ToLower(d.Name), text(d.Description), d.DeviceType, d.Status, text(d.Location),
		text(d.FirmwareVersion), text(d.HardwareVersion), d.CreatedAt, d.UpdatedAt, d.LastSeen,
	).Scan(&deviceID)
	if conflict := nameTaken(err, d.Name); conflict != nil {
		return conflict
	} else if err != nil {
		return wrap(ctx, "insert device", err)
	}

	err = tx.QueryRow(ctx, insertKeySQL, insertKeyArgs(deviceID, key)...).Scan(&keyID)
	if err != nil {
		return wrap(ctx, "insert device key", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(ctx, "create device: commit", err)
	}
	d.ID, key.ID, key.DeviceID = deviceID, keyID, deviceID
	return nil
}

// Device returns the device with the given id, or ENOTFOUND.
func (s *Store) Device(ctx context.Context, id int64) (*iotflow.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices AS d WHERE d.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(id)
	}
	return d, wrap(ctx, "get device", err)
}

// DeviceByName returns the device with exactly that name, or ENOTFOUND.
func (s *Store) DeviceByName(ctx context.Context, name string) (*iotflow.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices AS d WHERE d.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.Errorf(iotflow.ENOTFOUND, "Device not found", "No device named %q exists.", name)
	}
	return d, wrap(ctx, "get device by name", err)
}

// DeviceByKeyHash returns the key with that hash, whatever its state, and its
// device; ENOTFOUND when no key has that hash.
func (s *Store) DeviceByKeyHash(ctx context.Context, hash string) (*iotflow.Device, *iotflow.APIKey, error) {
	var r deviceRow
	var k iotflow.APIKey
	err := s.pool.QueryRow(ctx, `
		SELECT `+deviceColumns+`, `+keyColumns+`
		FROM device_auth AS k JOIN devices AS d ON d.id = k.device_id
		WHERE k.api_key_hash = $1`, hash).Scan(append(r.dest(), keyDest(&k)...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, iotflow.Errorf(iotflow.ENOTFOUND, "API key not found", "No API key has that hash.")
	} else if err != nil {
		return nil, nil, wrap(ctx, "get device by key hash", err)
	}
	keyUTC(&k)
	return r.device(), &k, nil
}

// ListDevices returns one page of the devices that match f, newest first, and
// the number of devices that match f in all.
func (s *Store) ListDevices(ctx context.Context, f iotflow.DeviceFilter) ([]*iotflow.Device, int64, error) {
	var w where
	if f.Status != "" {
		w.add("d.status = $%d", f.Status)
	}
	if f.DeviceType != "" {
		w.add("d.device_type = $%d", f.DeviceType)
	}
	if f.Search != "" {
		// strpos, unlike LIKE, takes '%' and '_' literally.
		w.add("strpos(d.name_folded, $%d) > 0", strings.ToLower(f.Search))
	}

	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM devices AS d`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, wrap(ctx, "count devices", err)
	}
	limit, offset := bound(f.Limit, f.Offset)
	n := w.next()
	rows, _ := s.pool.Query(ctx, `SELECT `+deviceColumns+` FROM devices AS d`+w.String()+
		fmt.Sprintf(` ORDER BY d.created_at DESC, d.id DESC LIMIT $%d OFFSET $%d`, n, n+1),
		append(w.args, limit, offset)...)
	devices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*iotflow.Device, error) {
		return scanDevice(row)
	})
	if err != nil {
		return nil, 0, wrap(ctx, "list devices", err)
	}
	return devices, total, nil
}

// UpdateDevice applies the non-nil fields of u and sets UpdatedAt.
func (s *Store) UpdateDevice(ctx context.Context, id int64, u iotflow.DeviceUpdate, updatedAt time.Time) (*iotflow.Device, error) {
	var folded *string
	if u.Name != nil {
		f := strings.ToLower(*u.Name)
		folded = &f
	}
	// A NULL parameter keeps the column; for optional strings "" clears it.
	d, err := scanDevice(s.pool.QueryRow(ctx, `
		UPDATE devices AS d SET
			name = coalesce($2, d.name),
			name_folded = coalesce($3, d.name_folded),
			description = CASE WHEN $4::text IS NULL THEN d.description ELSE nullif($4, '') END,
			status = coalesce($5, d.status),
			location = CASE WHEN $6::text IS NULL THEN d.location ELSE nullif($6, '') END,
			firmware_version = CASE WHEN $7::text IS NULL THEN d.firmware_version ELSE nullif($7, '') END,
			hardware_version = CASE WHEN $8::text IS NULL THEN d.hardware_version ELSE nullif($8, '') END,
			updated_at = $9
		WHERE d.id = $1
		RETURNING `+deviceColumns,
		id, textPtr(u.Name), folded, textPtr(u.Description), textPtr(u.Status), textPtr(u.Location),
		textPtr(u.FirmwareVersion), textPtr(u.HardwareVersion), updatedAt))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(id)
	} else if u.Name != nil {
		if conflict := nameTaken(err, *u.Name); conflict != nil {
			return nil, conflict
		}
	}
	return d, wrap(ctx, "update device", err)
}

// DeleteDevice deletes the device with its keys and readings and returns it
// as it was; ENOTFOUND when there is none.
func (s *Store) DeleteDevice(ctx context.Context, id int64) (*iotflow.Device, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(ctx, "delete device: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Locking the device first waits out batches still writing its
	// readings, so the hourly counts lose exactly what the cascade deletes.
	var one int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, id).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(id)
	} else if err != nil {
		return nil, wrap(ctx, "delete device: lock", err)
	}
	// Every reading of the device comes off the hourly counts. The
	// readings are counted first and the hourly rows written last, so that
	// those rows, which other devices share, are held for a moment and not
	// for as long as deleting the readings takes. No reading can arrive in
	// between: batches wait for the device's row.
	rows, _ := tx.Query(ctx, `
		SELECT date_trunc('hour', "timestamp", 'UTC'), -count(*)
		FROM telemetry_data WHERE device_id = $1 GROUP BY 1 ORDER BY 1`, id)
	var hours []time.Time
	var ns []int64
	var (
		h time.Time
		n int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&h, &n}, func() error {
		hours, ns = append(hours, h), append(ns, n)
		return nil
	}); err != nil {
		return nil, wrap(ctx, "delete device: count readings", err)
	}
	// Readings have no foreign key (see migration 0006): delete them here,
	// under the device's row lock, which InsertReadings waits for.
	if _, err := tx.Exec(ctx, `DELETE FROM telemetry_data WHERE device_id = $1`, id); err != nil {
		return nil, wrap(ctx, "delete device: readings", err)
	}
	// In hour order, as the write batches take them.
	if _, err := tx.Exec(ctx, `
		INSERT INTO telemetry_hourly (hour, n)
		SELECT h, n FROM unnest($1::timestamptz[], $2::bigint[]) AS v(h, n) ORDER BY h
		ON CONFLICT (hour) DO UPDATE SET n = telemetry_hourly.n + excluded.n`, hours, ns); err != nil {
		return nil, wrap(ctx, "delete device: hourly counts", err)
	}
	d, err := scanDevice(tx.QueryRow(ctx, `DELETE FROM devices AS d WHERE d.id = $1 RETURNING `+deviceColumns, id))
	if err != nil {
		return nil, wrap(ctx, "delete device", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, wrap(ctx, "delete device: commit", err)
	}
	return d, nil
}

// TouchDevices sets each device's LastSeen to the later of its stored value
// and the given time, in one transaction; unknown ids are ignored.
func (s *Store) TouchDevices(ctx context.Context, seen map[int64]time.Time) error {
	return s.touch(ctx, seen, "last_seen", "touch devices")
}

// MarkOffline moves each device's OfflineAt forward to the given time.
func (s *Store) MarkOffline(ctx context.Context, offline map[int64]time.Time) error {
	return s.touch(ctx, offline, "offline_at", "mark devices offline")
}

// touch moves column of each device of times forward to its time, in one
// transaction.
func (s *Store) touch(ctx context.Context, times map[int64]time.Time, column, what string) error {
	if len(times) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(times))
	ts := make([]time.Time, len(ids))
	for i, id := range ids {
		ts[i] = times[id]
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(ctx, what+": begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Lock the rows in id order first, as InsertReadings does. A lone
	// UPDATE visits rows in whatever order its plan gives, and deadlocks
	// with concurrent batches; so does locking in a CTE of the UPDATE, which
	// then revisits the versions its snapshot saw. The UPDATE, a statement
	// of its own with a fresh snapshot, only meets rows already locked.
	if _, err := tx.Exec(ctx, `
		SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, ids); err != nil {
		return wrap(ctx, what+": lock", err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE devices AS d SET `+column+` = GREATEST(coalesce(d.`+column+`, v.t), v.t)
		FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, t)
		WHERE d.id = v.id`, ids, ts); err != nil {
		return wrap(ctx, what, err)
	}
	return wrap(ctx, what+": commit", tx.Commit(ctx))
}
