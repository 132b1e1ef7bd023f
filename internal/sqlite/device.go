package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// deviceColumns are the columns that scanDevice reads, in its order.
const deviceColumns = `id, name, description, device_type, status, location,
	firmware_version, hardware_version, created_at, updated_at, last_seen, telemetry_count,
	pending_commands, shadow_version, offline_at`

// CreateDevice inserts d and its first API key in one transaction.
func (s *Store) CreateDevice(ctx context.Context, d *iotflow.Device, key *iotflow.APIKey) error {
	var deviceID, keyID int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		const insertDevice = `INSERT INTO devices (name, name_folded, description, device_type, status,
			location, firmware_version, hardware_version, created_at, updated_at, last_seen, telemetry_count)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
			RETURNING id`
		err := tx.QueryRowContext(ctx, insertDevice,
			d.Name, strings.ToLower(d.Name), nullString(d.Description), d.DeviceType, d.Status,
			nullString(d.Location), nullString(d.FirmwareVersion), nullString(d.HardwareVersion),
			micros(d.CreatedAt), micros(d.UpdatedAt), nullMicros(d.LastSeen),
		).Scan(&deviceID)
		if isUnique(err) {
			return iotflow.Errorf(iotflow.ECONFLICT, "Device already exists",
				"A device named %q already exists", d.Name)
		} else if err != nil {
			return wrap("insert device", err)
		}
		if key == nil {
			return nil
		}
		err = tx.QueryRowContext(ctx, insertKeySQL, insertKeyArgs(deviceID, key)...).Scan(&keyID)
		if isUnique(err) {
			return iotflow.Errorf(iotflow.ECONFLICT, "API key already exists",
				"An API key with that hash already exists")
		} else if err != nil {
			return wrap("insert api key", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Set only after the commit, so that a failed call leaves d and key as they were.
	d.ID = deviceID
	if key != nil {
		key.ID, key.DeviceID = keyID, deviceID
	}
	return nil
}

// Device returns the device with the given id.
func (s *Store) Device(ctx context.Context, id int64) (*iotflow.Device, error) {
	const q = `SELECT ` + deviceColumns + ` FROM devices WHERE id = ?`
	d, err := scanDevice(s.reader.QueryRowContext(ctx, q, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(id)
	}
	return d, wrap("select device", err)
}

// DeviceByName returns the device with exactly that name.
func (s *Store) DeviceByName(ctx context.Context, name string) (*iotflow.Device, error) {
	const q = `SELECT ` + deviceColumns + ` FROM devices WHERE name = ?`
	d, err := scanDevice(s.reader.QueryRowContext(ctx, q, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.Errorf(iotflow.ENOTFOUND, "Device not found", "No device is named %q", name)
	}
	return d, wrap("select device by name", err)
}

// DeviceByKeyHash returns the key with that hash, whatever its state, and its device.
func (s *Store) DeviceByKeyHash(ctx context.Context, hash string) (*iotflow.Device, *iotflow.APIKey, error) {
	const q = `SELECT d.id, d.name, d.description, d.device_type, d.status, d.location,
			d.firmware_version, d.hardware_version, d.created_at, d.updated_at, d.last_seen, d.telemetry_count,
			d.pending_commands, d.shadow_version, d.offline_at,
			k.id, k.device_id, k.key_prefix, k.api_key_hash, k.is_active,
			k.created_at, k.expires_at, k.last_used_at, k.usage_count, k.revoked_at
		FROM device_auth k JOIN devices d ON d.id = k.device_id
		WHERE k.api_key_hash = ?`
	var (
		d   iotflow.Device
		k   iotflow.APIKey
		dev deviceRow
		key keyRow
	)
	err := s.reader.QueryRowContext(ctx, q, hash).Scan(append(dev.fields(&d), key.fields(&k)...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, iotflow.Errorf(iotflow.ENOTFOUND, "API key not found", "No API key has that hash")
	} else if err != nil {
		return nil, nil, wrap("select device by key hash", err)
	}
	dev.fill(&d)
	key.fill(&k)
	return &d, &k, nil
}

// ListDevices returns one page of the devices that match f, newest first,
// and the number of all devices that match f.
func (s *Store) ListDevices(ctx context.Context, f iotflow.DeviceFilter) ([]*iotflow.Device, int64, error) {
	var conds []string
	var args []any
	if f.Status != "" {
		conds, args = append(conds, `status = ?`), append(args, f.Status)
	}
	if f.DeviceType != "" {
		conds, args = append(conds, `device_type = ?`), append(args, f.DeviceType)
	}
	if f.Search != "" {
		// instr, unlike LIKE, has no wildcards: '%' and '_' stay literal.
		conds, args = append(conds, `instr(name_folded, ?) > 0`), append(args, strings.ToLower(f.Search))
	}
	where := whereClause(conds)
	devices := make([]*iotflow.Device, 0)
	var total int64
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices`+where, args...).Scan(&total); err != nil {
			return wrap("count devices", err)
		}
		q := `SELECT ` + deviceColumns + ` FROM devices` + where +
			` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`
		rows, err := tx.QueryContext(ctx, q, append(args, limit(f.Limit), max(f.Offset, 0))...)
		if err != nil {
			return wrap("list devices", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				return wrap("scan device", err)
			}
			devices = append(devices, d)
		}
		return wrap("list devices", rows.Err())
	})
	if err != nil {
		return nil, 0, err
	}
	return devices, total, nil
}

// UpdateDevice applies the non-nil fields of u and sets UpdatedAt.
func (s *Store) UpdateDevice(ctx context.Context, id int64, u iotflow.DeviceUpdate, updatedAt time.Time) (*iotflow.Device, error) {
	sets := []string{`updated_at = ?`}
	args := []any{micros(updatedAt)}
	if u.Name != nil {
		sets, args = append(sets, `name = ?`, `name_folded = ?`), append(args, *u.Name, strings.ToLower(*u.Name))
	}
	if u.Description != nil {
		sets, args = append(sets, `description = ?`), append(args, nullString(*u.Description))
	}
	if u.Status != nil {
		sets, args = append(sets, `status = ?`), append(args, *u.Status)
	}
	if u.Location != nil {
		sets, args = append(sets, `location = ?`), append(args, nullString(*u.Location))
	}
	if u.FirmwareVersion != nil {
		sets, args = append(sets, `firmware_version = ?`), append(args, nullString(*u.FirmwareVersion))
	}
	if u.HardwareVersion != nil {
		sets, args = append(sets, `hardware_version = ?`), append(args, nullString(*u.HardwareVersion))
	}
	q := `UPDATE devices SET ` + strings.Join(sets, ", ") + ` WHERE id = ? RETURNING ` + deviceColumns
	d, err := scanDevice(s.writer.QueryRowContext(ctx, q, append(args, id)...))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, iotflow.DeviceNotFound(id)
	case isUnique(err) && u.Name != nil:
		return nil, iotflow.Errorf(iotflow.ECONFLICT, "Device already exists",
			"A device named %q already exists", *u.Name)
	}
	return d, wrap("update device", err)
}

// DeleteDevice deletes the device; its keys and readings go with it by the
// foreign keys' ON DELETE CASCADE.
func (s *Store) DeleteDevice(ctx context.Context, id int64) (*iotflow.Device, error) {
	const q = `DELETE FROM devices WHERE id = ? RETURNING ` + deviceColumns
	d, err := scanDevice(s.writer.QueryRowContext(ctx, q, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(id)
	}
	return d, wrap("delete device", err)
}

// TouchDevices moves each device's LastSeen forward to the given time, never back.
func (s *Store) TouchDevices(ctx context.Context, seen map[int64]time.Time) error {
	return s.touch(ctx, seen, `UPDATE devices SET last_seen = max(coalesce(last_seen, ?1), ?1) WHERE id = ?2`, "touch devices")
}

// touch runs q (with ?1 a time and ?2 a device id) for each device of
// times, in id order, in one transaction.
func (s *Store) touch(ctx context.Context, times map[int64]time.Time, q, what string) error {
	if len(times) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(times))
	for id := range times {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return wrap("prepare "+what, err)
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, micros(times[id]), id); err != nil {
				return wrap(what, err)
			}
		}
		return nil
	})
}

// MarkOffline moves each device's OfflineAt forward to the given time.
func (s *Store) MarkOffline(ctx context.Context, offline map[int64]time.Time) error {
	return s.touch(ctx, offline, `UPDATE devices SET offline_at = max(coalesce(offline_at, ?1), ?1) WHERE id = ?2`, "mark devices offline")
}

// deviceRow holds the nullable columns of a device while it is scanned.
type deviceRow struct {
	description, location, firmware, hardware sql.NullString
	created, updated                          int64
	lastSeen, offline                         sql.NullInt64
}

// fields returns the scan destinations for deviceColumns.
func (r *deviceRow) fields(d *iotflow.Device) []any {
	return []any{&d.ID, &d.Name, &r.description, &d.DeviceType, &d.Status, &r.location,
		&r.firmware, &r.hardware, &r.created, &r.updated, &r.lastSeen, &d.TelemetryCount,
		&d.PendingCommands, &d.ShadowVersion, &r.offline}
}

// fill copies the scanned columns into d.
func (r *deviceRow) fill(d *iotflow.Device) {
	d.Description, d.Location = r.description.String, r.location.String
	d.FirmwareVersion, d.HardwareVersion = r.firmware.String, r.hardware.String
	d.CreatedAt, d.UpdatedAt, d.LastSeen = fromMicros(r.created), fromMicros(r.updated), fromNullMicros(r.lastSeen)
	d.OfflineAt = fromNullMicros(r.offline)
}

// scanDevice reads a row of deviceColumns.
func scanDevice(row interface{ Scan(...any) error }) (*iotflow.Device, error) {
	var d iotflow.Device
	var r deviceRow
	if err := row.Scan(r.fields(&d)...); err != nil {
		return nil, err
	}
	r.fill(&d)
	return &d, nil
}

// whereClause joins conditions with AND.
func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(conds, ` AND `)
}

// limit turns a page size into SQLite's LIMIT, where -1 means no limit.
func limit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
