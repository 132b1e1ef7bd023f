package sqlite

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// unrolledColumns are what the rollup and the series reads need of a
// reading.
const unrolledColumns = `t.id, t.device_id, t.timestamp, t.payload, t.metadata`

func scanValuesOf(rows *sql.Rows) ([]*iotflow.Reading, error) {
	defer rows.Close()
	var rs []*iotflow.Reading
	for rows.Next() {
		var r iotflow.Reading
		var ts int64
		if err := rows.Scan(&r.ID, &r.DeviceID, &ts, (*[]byte)(&r.Payload), (*[]byte)(&r.Metadata)); err != nil {
			return nil, err
		}
		r.Timestamp = fromMicros(ts)
		rs = append(rs, &r)
	}
	return rs, rows.Err()
}

// UnrolledReadings returns the readings above the rollups' watermark. One
// writer connection commits in id order, so every id up to the highest
// committed one is final.
func (s *Store) UnrolledReadings(ctx context.Context, limit int) (from, upTo int64, rs []*iotflow.Reading, err error) {
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		const state = `SELECT rolled_id, (SELECT coalesce(max(id), 0) FROM telemetry_data) FROM telemetry_rollup_state`
		if err := tx.QueryRowContext(ctx, state).Scan(&from, &upTo); err != nil {
			return wrap("rollup watermark", err)
		}
		upTo = max(upTo, from)
		rows, err := tx.QueryContext(ctx, `SELECT `+unrolledColumns+` FROM telemetry_data t
			WHERE t.id > ? AND t.id <= ? ORDER BY t.id LIMIT ?`, from, upTo, limit)
		if err != nil {
			return wrap("unrolled readings", err)
		}
		if rs, err = scanValuesOf(rows); err != nil {
			return wrap("unrolled readings", err)
		}
		if len(rs) == limit {
			upTo = rs[len(rs)-1].ID
		}
		return nil
	})
	return from, upTo, rs, err
}

// ApplyRollups merges u into the rollups and key states and moves the
// watermark, in one transaction of the writer.
func (s *Store) ApplyRollups(ctx context.Context, u iotflow.RollupUpdate) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		var rolled int64
		if err := tx.QueryRowContext(ctx, `SELECT rolled_id FROM telemetry_rollup_state`).Scan(&rolled); err != nil {
			return wrap("rollup watermark", err)
		}
		if rolled != u.From {
			return iotflow.Errorf(iotflow.ECONFLICT, "Rollup moved on", "The rollups cover readings up to %d, not %d", rolled, u.From)
		}
		live, err := existingDevices(ctx, tx, u)
		if err != nil {
			return err
		}
		roll, err := tx.PrepareContext(ctx, `INSERT INTO telemetry_rollups AS r
			(device_id, width, key, bucket, n, sum, min, max, first_at, first_id, first, last_at, last_id, last)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, width, key, bucket) DO UPDATE SET
				n = r.n + excluded.n, sum = r.sum + excluded.sum,
				min = min(r.min, excluded.min), max = max(r.max, excluded.max),
				first_at = iif((excluded.first_at, excluded.first_id) < (r.first_at, r.first_id), excluded.first_at, r.first_at),
				first = iif((excluded.first_at, excluded.first_id) < (r.first_at, r.first_id), excluded.first, r.first),
				first_id = iif((excluded.first_at, excluded.first_id) < (r.first_at, r.first_id), excluded.first_id, r.first_id),
				last_at = iif((excluded.last_at, excluded.last_id) > (r.last_at, r.last_id), excluded.last_at, r.last_at),
				last = iif((excluded.last_at, excluded.last_id) > (r.last_at, r.last_id), excluded.last, r.last),
				last_id = iif((excluded.last_at, excluded.last_id) > (r.last_at, r.last_id), excluded.last_id, r.last_id)`)
		if err != nil {
			return wrap("prepare rollups", err)
		}
		defer roll.Close()
		for _, r := range u.Rollups {
			if !live[r.DeviceID] {
				continue
			}
			a := r.Agg
			if _, err := roll.ExecContext(ctx, r.DeviceID, int64(r.Width/time.Second), r.Key, micros(r.Bucket),
				a.Count, a.Sum, a.Min, a.Max, micros(a.FirstAt), a.FirstID, a.First, micros(a.LastAt), a.LastID, a.Last); err != nil {
				return wrap("merge rollup", err)
			}
		}
		keys, err := tx.PrepareContext(ctx, `INSERT INTO telemetry_keys AS k (device_id, key, kind, at, reading_id, value)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, key) DO UPDATE SET
				kind = excluded.kind, at = excluded.at, reading_id = excluded.reading_id, value = excluded.value
			WHERE (excluded.at, excluded.reading_id) > (k.at, k.reading_id)`)
		if err != nil {
			return wrap("prepare key states", err)
		}
		defer keys.Close()
		for _, k := range u.Keys {
			if !live[k.DeviceID] {
				continue
			}
			if _, err := keys.ExecContext(ctx, k.DeviceID, k.Key, k.Kind.String(), micros(k.At), k.ReadingID, string(k.Value)); err != nil {
				return wrap("merge key state", err)
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE telemetry_rollup_state SET rolled_id = ?`, u.UpTo)
		return wrap("move rollup watermark", err)
	})
}

// existingDevices returns which of the devices u names still exist.
func existingDevices(ctx context.Context, tx *sql.Tx, u iotflow.RollupUpdate) (map[int64]bool, error) {
	named := map[int64]bool{}
	for _, r := range u.Rollups {
		named[r.DeviceID] = true
	}
	for _, k := range u.Keys {
		named[k.DeviceID] = true
	}
	live := map[int64]bool{}
	if len(named) == 0 {
		return live, nil
	}
	ids := slices.Sorted(maps.Keys(named))
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM devices WHERE id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return nil, wrap("rollup devices", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("rollup devices", err)
		}
		live[id] = true
	}
	return live, wrap("rollup devices", rows.Err())
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// SeriesData reads the rollups and readings a series query needs in one
// snapshot of the readers.
func (s *Store) SeriesData(ctx context.Context, q iotflow.SeriesQuery) (*iotflow.SeriesData, error) {
	data := &iotflow.SeriesData{}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var rolled int64
		if err := tx.QueryRowContext(ctx, `SELECT rolled_id FROM telemetry_rollup_state`).Scan(&rolled); err != nil {
			return wrap("rollup watermark", err)
		}
		var tailConds []string
		tailArgs := []any{q.DeviceID, rolled}
		for _, seg := range q.Segments {
			if seg.Width == 0 {
				rows, err := tx.QueryContext(ctx, `SELECT `+unrolledColumns+` FROM telemetry_data t
					WHERE t.device_id = ? AND t.timestamp >= ? AND t.timestamp < ?`, q.DeviceID, micros(seg.Start), micros(seg.End))
				if err != nil {
					return wrap("series readings", err)
				}
				rs, err := scanValuesOf(rows)
				if err != nil {
					return wrap("series readings", err)
				}
				data.Readings = append(data.Readings, rs...)
				continue
			}
			tailConds = append(tailConds, `(+t.timestamp >= ? AND +t.timestamp < ?)`)
			tailArgs = append(tailArgs, micros(seg.Start), micros(seg.End))
			if len(q.Keys) == 0 {
				continue
			}
			args := []any{q.DeviceID, int64(seg.Width / time.Second), micros(seg.Start), micros(seg.End)}
			for _, k := range q.Keys {
				args = append(args, k)
			}
			rows, err := tx.QueryContext(ctx, `SELECT key, bucket, n, sum, min, max, first_at, first_id, first, last_at, last_id, last
				FROM telemetry_rollups
				WHERE device_id = ? AND width = ? AND bucket >= ? AND bucket < ? AND key IN (`+placeholders(len(q.Keys))+`)`, args...)
			if err != nil {
				return wrap("series rollups", err)
			}
			if err := scanRollups(rows, q.DeviceID, seg.Width, &data.Rollups); err != nil {
				return wrap("series rollups", err)
			}
		}
		if len(tailConds) == 0 {
			return nil
		}
		// Only the rowid may lead: the device's index or the time index
		// would walk far more readings than the few above the watermark.
		rows, err := tx.QueryContext(ctx, `SELECT `+unrolledColumns+` FROM telemetry_data t
			WHERE +t.device_id = ? AND t.id > ? AND (`+strings.Join(tailConds, " OR ")+`)`, tailArgs...)
		if err != nil {
			return wrap("series tail", err)
		}
		rs, err := scanValuesOf(rows)
		if err != nil {
			return wrap("series tail", err)
		}
		data.Readings = append(data.Readings, rs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

func scanRollups(rows *sql.Rows, device int64, width time.Duration, out *[]iotflow.Rollup) error {
	defer rows.Close()
	for rows.Next() {
		r := iotflow.Rollup{DeviceID: device, Width: width}
		a := &r.Agg
		var bucket, firstAt, lastAt int64
		if err := rows.Scan(&r.Key, &bucket, &a.Count, &a.Sum, &a.Min, &a.Max, &firstAt, &a.FirstID, &a.First,
			&lastAt, &a.LastID, &a.Last); err != nil {
			return err
		}
		r.Bucket, a.FirstAt, a.LastAt = fromMicros(bucket), fromMicros(firstAt), fromMicros(lastAt)
		*out = append(*out, r)
	}
	return rows.Err()
}

// DeviceKeys returns the key states of a device and its readings above the
// rollups' watermark, in one snapshot.
func (s *Store) DeviceKeys(ctx context.Context, deviceID int64) ([]iotflow.KeyState, []*iotflow.Reading, error) {
	var states []iotflow.KeyState
	var tail []*iotflow.Reading
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT key, kind, at, reading_id, value FROM telemetry_keys WHERE device_id = ? ORDER BY key`, deviceID)
		if err != nil {
			return wrap("key states", err)
		}
		defer rows.Close()
		for rows.Next() {
			k := iotflow.KeyState{DeviceID: deviceID}
			var kind string
			var at int64
			if err := rows.Scan(&k.Key, &kind, &at, &k.ReadingID, (*[]byte)(&k.Value)); err != nil {
				return wrap("key states", err)
			}
			k.Kind, k.At = iotflow.ParseValueKind(kind), fromMicros(at)
			states = append(states, k)
		}
		if err := rows.Err(); err != nil {
			return wrap("key states", err)
		}
		// The unary + keeps SQLite off the device's index, which would
		// walk every reading of the device: the ids above the watermark
		// are few, and the rowid finds them at once.
		rows, err = tx.QueryContext(ctx, `SELECT `+unrolledColumns+` FROM telemetry_data t
			WHERE +t.device_id = ? AND t.id > (SELECT rolled_id FROM telemetry_rollup_state)`, deviceID)
		if err != nil {
			return wrap("key tail", err)
		}
		tail, err = scanValuesOf(rows)
		return wrap("key tail", err)
	})
	return states, tail, err
}

// DeleteReadingsBefore deletes up to limit readings older than cutoff,
// oldest first, with their counts, and the rollups of buckets before it.
func (s *Store) DeleteReadingsBefore(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	deleted := 0
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM telemetry_data WHERE id IN (
			SELECT id FROM telemetry_data WHERE timestamp < ? ORDER BY timestamp LIMIT ?)
			RETURNING device_id`, micros(cutoff), limit)
		if err != nil {
			return wrap("delete old readings", err)
		}
		counts := map[int64]int64{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return wrap("delete old readings", err)
			}
			counts[id]++
			deleted++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap("delete old readings", err)
		}
		for _, id := range slices.Sorted(maps.Keys(counts)) {
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET telemetry_count = telemetry_count - ? WHERE id = ?`, counts[id], id); err != nil {
				return wrap("count deleted readings", err)
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM telemetry_rollups WHERE bucket < ?`, micros(cutoff))
		return wrap("delete old rollups", err)
	})
	return deleted, err
}
