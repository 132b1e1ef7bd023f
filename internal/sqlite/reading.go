package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// InsertReadings stores the readings and raises the devices' telemetry
// counters in one transaction. Readings whose MessageID is stored already
// come back as duplicates.
func (s *Store) InsertReadings(ctx context.Context, rs []*iotflow.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	for _, r := range rs {
		// Checked here so that SQLite stores no more than PostgreSQL's jsonb accepts.
		if !jsonObjectOrEmpty(r.Payload) || !jsonObjectOrEmpty(r.Metadata) {
			return iotflow.Errorf(iotflow.EINVALID, "Invalid telemetry",
				"Reading payload and metadata must be JSON objects")
		}
	}
	type result struct {
		id  int64
		ts  int64
		dup bool
	}
	results := make([]result, len(rs))
	ins, cnt, err := s.hotStatements(ctx)
	if err != nil {
		return err
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		// The statements run without ctx's cancellation, which would cost
		// the driver a watcher goroutine each; each is short, so checking
		// ctx between them honours it just as well.
		sctx := context.WithoutCancel(ctx)
		stmt, count := tx.StmtContext(sctx, ins), tx.StmtContext(sctx, cnt)
		counts := make(map[int64]int64)
		for i, r := range rs {
			if err := ctx.Err(); err != nil {
				return wrap("insert telemetry", err)
			}
			var msg any
			if r.MessageID != "" {
				msg = r.MessageID
			}
			results[i].ts = micros(r.Timestamp)
			// Exec, not RETURNING, which costs SQLite a temporary table per
			// statement: the new reading's id is the connection's last rowid.
			res, err := stmt.ExecContext(sctx, r.DeviceID, results[i].ts, micros(r.ReceivedAt),
				r.DataType, jsonText(r.Payload), jsonText(r.Metadata), msg)
			var n int64
			if err == nil {
				if n, err = res.RowsAffected(); err == nil && n == 1 {
					results[i].id, err = res.LastInsertId()
				}
			}
			if isForeignKey(err) {
				return iotflow.DeviceNotFound(r.DeviceID)
			} else if err != nil {
				return wrap("insert telemetry", err)
			}
			if n == 1 {
				counts[r.DeviceID]++
				continue
			}
			// A message id the device has stored already is skipped by ON
			// CONFLICT (see insertReadingSQL) and looked up; the single
			// writer connection makes the pair atomic.
			const find = `SELECT id, timestamp FROM telemetry_data WHERE device_id = ? AND message_id = ?`
			if err := tx.QueryRowContext(sctx, find, r.DeviceID, r.MessageID).Scan(&results[i].id, &results[i].ts); err != nil {
				return wrap("find message id", err)
			}
			results[i].dup = true
			counts[r.DeviceID] += 0 // the device must still exist
		}
		for _, id := range slices.Sorted(maps.Keys(counts)) {
			res, err := count.ExecContext(sctx, counts[id], id)
			if err != nil {
				return wrap("count telemetry", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return wrap("count telemetry", err)
			} else if n != 1 {
				return iotflow.DeviceNotFound(id)
			}
		}
		return wrap("insert telemetry", ctx.Err())
	})
	if err != nil {
		return err
	}
	for i, r := range rs {
		r.ID, r.Duplicate = results[i].id, results[i].dup
		if r.Duplicate {
			r.Timestamp = fromMicros(results[i].ts)
		}
	}
	return nil
}

const (
	insertReadingSQL = `INSERT INTO telemetry_data (device_id, timestamp, received_at, data_type, payload, metadata, message_id)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id, message_id) WHERE message_id IS NOT NULL DO NOTHING`
	countReadingsSQL = `UPDATE devices SET telemetry_count = telemetry_count + ? WHERE id = ?`
)

// hotStatements returns the statements of InsertReadings, prepared once on
// the writer (outside any transaction: the writer has one connection).
func (s *Store) hotStatements(ctx context.Context) (ins, cnt *sql.Stmt, err error) {
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if s.insertReading == nil {
		if s.insertReading, err = s.writer.PrepareContext(ctx, insertReadingSQL); err != nil {
			return nil, nil, wrap("prepare insert telemetry", err)
		}
	}
	if s.countReadings == nil {
		if s.countReadings, err = s.writer.PrepareContext(ctx, countReadingsSQL); err != nil {
			return nil, nil, wrap("prepare count telemetry", err)
		}
	}
	return s.insertReading, s.countReadings, nil
}

// ListReadings returns one page of the readings that match f, newest
// first unless f.Ascending.
func (s *Store) ListReadings(ctx context.Context, f iotflow.ReadingFilter) ([]*iotflow.Reading, error) {
	where, args := readingWhere(f)
	order := ` ORDER BY t.timestamp DESC, t.id DESC`
	if f.Ascending {
		order = ` ORDER BY t.timestamp ASC, t.id ASC`
	}
	q := `SELECT ` + readingColumns + `, d.name
		FROM telemetry_data t JOIN devices d ON d.id = t.device_id` + where + order + `
		LIMIT ? OFFSET ?`
	if f.DeviceID != 0 {
		// One device's readings take its name once, not by a join per row.
		q = `SELECT ` + readingColumns + `, (SELECT name FROM devices WHERE id = ?)
			FROM telemetry_data t` + where + order + `
			LIMIT ? OFFSET ?`
		args = append([]any{f.DeviceID}, args...)
	}
	rows, err := s.reader.QueryContext(ctx, q, append(args, limit(f.Limit), max(f.Offset, 0))...)
	if err != nil {
		return nil, wrap("list telemetry", err)
	}
	readings, err := scanReadings(rows, true)
	return readings, wrap("list telemetry", err)
}

// readingColumns are what scanReadings reads of telemetry_data t, in its order.
const readingColumns = `t.id, t.device_id, t.timestamp, t.received_at, t.data_type, t.payload, t.metadata,
	coalesce(t.message_id, '')`

// scanReadings reads rows of readingColumns, followed by the device's name
// when withName, and closes rows.
func scanReadings(rows *sql.Rows, withName bool) ([]*iotflow.Reading, error) {
	defer rows.Close()
	readings := make([]*iotflow.Reading, 0)
	for rows.Next() {
		var r iotflow.Reading
		var ts, received int64
		dest := []any{&r.ID, &r.DeviceID, &ts, &received, &r.DataType, (*[]byte)(&r.Payload), (*[]byte)(&r.Metadata), &r.MessageID}
		if withName {
			dest = append(dest, &r.DeviceName)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		r.Timestamp, r.ReceivedAt = fromMicros(ts), fromMicros(received)
		readings = append(readings, &r)
	}
	return readings, rows.Err()
}

// CountReadings returns how many readings match f. Without a data type or
// time filter the answer comes from the devices' counters, not from a scan
// of the telemetry.
func (s *Store) CountReadings(ctx context.Context, f iotflow.ReadingFilter) (int64, error) {
	var n int64
	var err error
	switch {
	case f.DataType != "" || f.Since != nil || f.Start != nil || f.End != nil || f.After != nil:
		where, args := readingWhere(f)
		err = s.reader.QueryRowContext(ctx, `SELECT count(*) FROM telemetry_data t`+where, args...).Scan(&n)
	case f.DeviceID != 0:
		const q = `SELECT telemetry_count FROM devices WHERE id = ?`
		err = s.reader.QueryRowContext(ctx, q, f.DeviceID).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
	default:
		const q = `SELECT coalesce(sum(telemetry_count), 0) FROM devices`
		err = s.reader.QueryRowContext(ctx, q).Scan(&n)
	}
	if err != nil {
		return 0, wrap("count telemetry", err)
	}
	return n, nil
}

// ReadingStats summarises the readings of one device.
func (s *Store) ReadingStats(ctx context.Context, deviceID int64) (iotflow.ReadingStats, error) {
	// Both subqueries walk the (device_id, timestamp) index from one end.
	const q = `SELECT d.telemetry_count,
			(SELECT timestamp FROM telemetry_data WHERE device_id = d.id ORDER BY timestamp ASC LIMIT 1),
			(SELECT timestamp FROM telemetry_data WHERE device_id = d.id ORDER BY timestamp DESC LIMIT 1)
		FROM devices d WHERE d.id = ?`
	var st iotflow.ReadingStats
	var first, latest sql.NullInt64
	err := s.reader.QueryRowContext(ctx, q, deviceID).Scan(&st.Count, &first, &latest)
	if errors.Is(err, sql.ErrNoRows) {
		return iotflow.ReadingStats{}, nil
	} else if err != nil {
		return iotflow.ReadingStats{}, wrap("reading stats", err)
	}
	st.First, st.Latest = fromNullMicros(first), fromNullMicros(latest)
	return st, nil
}

// Dashboard returns the fleet-wide figures, all from one snapshot.
func (s *Store) Dashboard(ctx context.Context, onlineSince, recentSince time.Time) (*iotflow.DashboardStats, error) {
	st := iotflow.DashboardStats{DeviceTypes: make([]iotflow.TypeCount, 0)}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		const devices = `SELECT count(*),
				coalesce(sum(status = 'active'), 0),
				coalesce(sum(status = 'inactive'), 0),
				coalesce(sum(status = 'maintenance'), 0),
				coalesce(sum(last_seen >= ? AND (offline_at IS NULL OR offline_at < last_seen)), 0),
				coalesce(sum(telemetry_count), 0)
			FROM devices`
		err := tx.QueryRowContext(ctx, devices, micros(onlineSince)).Scan(&st.TotalDevices,
			&st.ActiveDevices, &st.InactiveDevices, &st.MaintenanceDevices, &st.OnlineDevices, &st.TotalReadings)
		if err != nil {
			return wrap("dashboard devices", err)
		}
		const recent = `SELECT count(*) FROM telemetry_data WHERE timestamp >= ?`
		if err := tx.QueryRowContext(ctx, recent, micros(recentSince)).Scan(&st.RecentReadings); err != nil {
			return wrap("dashboard recent telemetry", err)
		}
		const types = `SELECT device_type, count(*) FROM devices
			GROUP BY device_type
			ORDER BY count(*) DESC, device_type ASC`
		rows, err := tx.QueryContext(ctx, types)
		if err != nil {
			return wrap("dashboard device types", err)
		}
		defer rows.Close()
		for rows.Next() {
			var tc iotflow.TypeCount
			if err := rows.Scan(&tc.Type, &tc.Count); err != nil {
				return wrap("scan device type", err)
			}
			st.DeviceTypes = append(st.DeviceTypes, tc)
		}
		return wrap("dashboard device types", rows.Err())
	})
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// readingWhere builds the WHERE clause of f's filters over telemetry_data t.
func readingWhere(f iotflow.ReadingFilter) (string, []any) {
	var conds []string
	var args []any
	if f.DeviceID != 0 {
		conds, args = append(conds, `t.device_id = ?`), append(args, f.DeviceID)
	}
	if f.DataType != "" {
		conds, args = append(conds, `t.data_type = ?`), append(args, f.DataType)
	}
	if f.Since != nil {
		conds, args = append(conds, `t.timestamp >= ?`), append(args, micros(*f.Since))
	}
	if f.Start != nil {
		conds, args = append(conds, `t.timestamp >= ?`), append(args, micros(*f.Start))
	}
	if f.End != nil {
		conds, args = append(conds, `t.timestamp < ?`), append(args, micros(*f.End))
	}
	if k := f.After; k != nil {
		cmp := "<"
		if f.Ascending {
			cmp = ">"
		}
		conds, args = append(conds, `(t.timestamp, t.id) `+cmp+` (?, ?)`), append(args, micros(k.At), k.ID)
	}
	return whereClause(conds), args
}

// jsonObjectOrEmpty reports whether b is empty or holds a JSON object.
func jsonObjectOrEmpty(b json.RawMessage) bool {
	if len(b) == 0 {
		return true
	}
	return json.Valid(b) && bytes.TrimLeft(b, " \t\r\n")[0] == '{'
}

// jsonText is the stored form of a JSON object; empty becomes {}.
func jsonText(b json.RawMessage) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}
