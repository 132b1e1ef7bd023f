package postgres

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// writeLockClass is the first key of the advisory lock every write batch
// holds shared while it draws ids and commits; the second, as for the
// migrations, is the schema's.
const writeLockClass = 0x696f77

// unrolledColumns are what the rollup and the series reads need of a
// reading.
const unrolledColumns = `t.id, t.device_id, t."timestamp", t.payload, t.metadata`

func scanValuesOf(rows pgx.Rows) ([]*iotflow.Reading, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*iotflow.Reading, error) {
		var r iotflow.Reading
		err := row.Scan(&r.ID, &r.DeviceID, &r.Timestamp, (*[]byte)(&r.Payload), (*[]byte)(&r.Metadata))
		r.Timestamp = r.Timestamp.UTC()
		return &r, err
	})
}

// UnrolledReadings returns the readings above the rollups' watermark.
// Batches on several connections, and nodes, commit out of id order, so
// the highest id that is final is read under the write lock taken
// exclusively: it waits for the batches under way and holds off new ones
// for as long as that read takes.
func (s *Store) UnrolledReadings(ctx context.Context, limit int) (from, upTo int64, rs []*iotflow.Reading, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, nil, wrap(ctx, "unrolled readings: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, writeLockClass); err != nil {
		return 0, 0, nil, wrap(ctx, "unrolled readings: lock", err)
	}
	err = tx.QueryRow(ctx, `SELECT rolled_id, (SELECT coalesce(max(id), 0) FROM telemetry_data) FROM telemetry_rollup_state`).Scan(&from, &upTo)
	if err != nil {
		return 0, 0, nil, wrap(ctx, "rollup watermark", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, nil, wrap(ctx, "unrolled readings: commit", err)
	}
	upTo = max(upTo, from)
	rows, _ := s.pool.Query(ctx, `SELECT `+unrolledColumns+` FROM telemetry_data t
		WHERE t.id > $1 AND t.id <= $2 ORDER BY t.id LIMIT $3`, from, upTo, limit)
	if rs, err = scanValuesOf(rows); err != nil {
		return 0, 0, nil, wrap(ctx, "unrolled readings", err)
	}
	if len(rs) == limit {
		upTo = rs[len(rs)-1].ID
	}
	return from, upTo, rs, nil
}

// ApplyRollups merges u into the rollups and key states and moves the
// watermark, in one transaction.
func (s *Store) ApplyRollups(ctx context.Context, u iotflow.RollupUpdate) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(ctx, "apply rollups: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var rolled int64
	if err := tx.QueryRow(ctx, `SELECT rolled_id FROM telemetry_rollup_state FOR UPDATE`).Scan(&rolled); err != nil {
		return wrap(ctx, "rollup watermark", err)
	}
	if rolled != u.From {
		return iotflow.Errorf(iotflow.ECONFLICT, "Rollup moved on", "The rollups cover readings up to %d, not %d", rolled, u.From)
	}
	n := len(u.Rollups)
	devs, widths, keys, buckets := make([]int64, n), make([]int32, n), make([]string, n), make([]time.Time, n)
	counts, sums, mins, maxs := make([]int64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	firstAt, firstID, first := make([]time.Time, n), make([]int64, n), make([]float64, n)
	lastAt, lastID, last := make([]time.Time, n), make([]int64, n), make([]float64, n)
	for i, r := range u.Rollups {
		a := r.Agg
		devs[i], widths[i], keys[i], buckets[i] = r.DeviceID, int32(r.Width/time.Second), r.Key, r.Bucket
		counts[i], sums[i], mins[i], maxs[i] = a.Count, a.Sum, a.Min, a.Max
		firstAt[i], firstID[i], first[i], lastAt[i], lastID[i], last[i] = a.FirstAt, a.FirstID, a.First, a.LastAt, a.LastID, a.Last
	}
	m := len(u.Keys)
	kdevs, kkeys, kinds, ats, rids, values := make([]int64, m), make([]string, m), make([]string, m), make([]time.Time, m), make([]int64, m), make([]string, m)
	for i, k := range u.Keys {
		kdevs[i], kkeys[i], kinds[i], ats[i], rids[i], values[i] = k.DeviceID, k.Key, k.Kind.String(), k.At, k.ReadingID, string(k.Value)
	}
	// The devices first, in id order, FOR KEY SHARE: DeleteDevice, which
	// takes its device FOR UPDATE and then deletes its rollups, waits for
	// this transaction or this one for it, never both for each other's
	// rows. The joins drop a device deleted since its readings were read.
	named := map[int64]bool{}
	for _, id := range devs {
		named[id] = true
	}
	for _, id := range kdevs {
		named[id] = true
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR KEY SHARE`, slices.Sorted(maps.Keys(named)))
	b.Queue(`INSERT INTO telemetry_rollups AS r
		(device_id, width, key, bucket, n, sum, min, max, first_at, first_id, first, last_at, last_id, last)
		SELECT u.* FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::timestamptz[], $5::bigint[], $6::float8[],
			$7::float8[], $8::float8[], $9::timestamptz[], $10::bigint[], $11::float8[], $12::timestamptz[], $13::bigint[], $14::float8[])
			AS u(device_id, width, key, bucket, n, sum, min, max, first_at, first_id, first, last_at, last_id, last)
		JOIN devices AS d ON d.id = u.device_id
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (device_id, width, key, bucket) DO UPDATE SET
			n = r.n + excluded.n, sum = r.sum + excluded.sum,
			min = least(r.min, excluded.min), max = greatest(r.max, excluded.max),
			first_at = CASE WHEN (excluded.first_at, excluded.first_id) < (r.first_at, r.first_id) THEN excluded.first_at ELSE r.first_at END,
			first_id = CASE WHEN (excluded.first_at, excluded.first_id) < (r.first_at, r.first_id) THEN excluded.first_id ELSE r.first_id END,
			first = CASE WHEN (excluded.first_at, excluded.first_id) < (r.first_at, r.first_id) THEN excluded.first ELSE r.first END,
			last_at = CASE WHEN (excluded.last_at, excluded.last_id) > (r.last_at, r.last_id) THEN excluded.last_at ELSE r.last_at END,
			last_id = CASE WHEN (excluded.last_at, excluded.last_id) > (r.last_at, r.last_id) THEN excluded.last_id ELSE r.last_id END,
			last = CASE WHEN (excluded.last_at, excluded.last_id) > (r.last_at, r.last_id) THEN excluded.last ELSE r.last END`,
		devs, widths, keys, buckets, counts, sums, mins, maxs, firstAt, firstID, first, lastAt, lastID, last)
	b.Queue(`INSERT INTO telemetry_keys AS k (device_id, key, kind, at, reading_id, value)
		SELECT u.* FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::text[])
			AS u(device_id, key, kind, at, reading_id, value)
		JOIN devices AS d ON d.id = u.device_id
		ORDER BY 1, 2
		ON CONFLICT (device_id, key) DO UPDATE SET
			kind = excluded.kind, at = excluded.at, reading_id = excluded.reading_id, value = excluded.value
		WHERE (excluded.at, excluded.reading_id) > (k.at, k.reading_id)`,
		kdevs, kkeys, kinds, ats, rids, values)
	b.Queue(`UPDATE telemetry_rollup_state SET rolled_id = $1`, u.UpTo)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return wrap(ctx, "apply rollups", err)
	}
	return wrap(ctx, "apply rollups: commit", tx.Commit(ctx))
}

// rolledID reads the rollups' watermark.
func rolledID(ctx context.Context, tx pgx.Tx) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT rolled_id FROM telemetry_rollup_state`).Scan(&id)
	return id, wrap(ctx, "rollup watermark", err)
}

// tailSQL selects the readings of the device $1 above the watermark
// rolled. The watermark is written into the statement, not passed as a
// parameter: as a constant the planner sees how few ids lie above it and
// walks the primary key from there; as a parameter, or a subquery, it
// expects a third of the table and scans every reading of the device.
func tailSQL(rolled int64) string {
	return `SELECT ` + unrolledColumns + ` FROM telemetry_data t WHERE t.id > ` + strconv.FormatInt(rolled, 10) + ` AND t.device_id = $1`
}

// readSnapshot runs fn in one read-only transaction that sees one
// snapshot throughout.
func (s *Store) readSnapshot(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return wrap(ctx, "read snapshot: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return wrap(ctx, "read snapshot: commit", tx.Commit(ctx))
}

// SeriesData reads the rollups and readings a series query needs in one
// snapshot.
func (s *Store) SeriesData(ctx context.Context, q iotflow.SeriesQuery) (*iotflow.SeriesData, error) {
	data := &iotflow.SeriesData{}
	err := s.readSnapshot(ctx, func(tx pgx.Tx) error {
		var starts, ends []time.Time // of the rollup segments, for the tail
		for _, seg := range q.Segments {
			if seg.Width == 0 {
				rows, _ := tx.Query(ctx, `SELECT `+unrolledColumns+` FROM telemetry_data t
					WHERE t.device_id = $1 AND t."timestamp" >= $2 AND t."timestamp" < $3`, q.DeviceID, seg.Start, seg.End)
				rs, err := scanValuesOf(rows)
				if err != nil {
					return wrap(ctx, "series readings", err)
				}
				data.Readings = append(data.Readings, rs...)
				continue
			}
			starts, ends = append(starts, seg.Start), append(ends, seg.End)
			if len(q.Keys) == 0 {
				continue
			}
			rows, _ := tx.Query(ctx, `SELECT key, bucket, n, sum, min, max, first_at, first_id, first, last_at, last_id, last
				FROM telemetry_rollups
				WHERE device_id = $1 AND width = $2 AND key = ANY($3) AND bucket >= $4 AND bucket < $5`,
				q.DeviceID, int32(seg.Width/time.Second), q.Keys, seg.Start, seg.End)
			rollups, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (iotflow.Rollup, error) {
				r := iotflow.Rollup{DeviceID: q.DeviceID, Width: seg.Width}
				a := &r.Agg
				err := row.Scan(&r.Key, &r.Bucket, &a.Count, &a.Sum, &a.Min, &a.Max, &a.FirstAt, &a.FirstID, &a.First,
					&a.LastAt, &a.LastID, &a.Last)
				r.Bucket, a.FirstAt, a.LastAt = r.Bucket.UTC(), a.FirstAt.UTC(), a.LastAt.UTC()
				return r, err
			})
			if err != nil {
				return wrap(ctx, "series rollups", err)
			}
			data.Rollups = append(data.Rollups, rollups...)
		}
		if len(starts) == 0 {
			return nil
		}
		rolled, err := rolledID(ctx, tx)
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, tailSQL(rolled)+`
			AND EXISTS (SELECT 1 FROM unnest($2::timestamptz[], $3::timestamptz[]) AS s(start, stop)
				WHERE t."timestamp" >= s.start AND t."timestamp" < s.stop)`, q.DeviceID, starts, ends)
		rs, err := scanValuesOf(rows)
		if err != nil {
			return wrap(ctx, "series tail", err)
		}
		data.Readings = append(data.Readings, rs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// DeviceKeys returns the key states of a device and its readings above the
// rollups' watermark, in one snapshot.
func (s *Store) DeviceKeys(ctx context.Context, deviceID int64) ([]iotflow.KeyState, []*iotflow.Reading, error) {
	var states []iotflow.KeyState
	var tail []*iotflow.Reading
	err := s.readSnapshot(ctx, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT key, kind, at, reading_id, value FROM telemetry_keys WHERE device_id = $1 ORDER BY key`, deviceID)
		var err error
		states, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (iotflow.KeyState, error) {
			k := iotflow.KeyState{DeviceID: deviceID}
			var kind string
			err := row.Scan(&k.Key, &kind, &k.At, &k.ReadingID, (*[]byte)(&k.Value))
			k.Kind, k.At = iotflow.ParseValueKind(kind), k.At.UTC()
			return k, err
		})
		if err != nil {
			return wrap(ctx, "key states", err)
		}
		rolled, err := rolledID(ctx, tx)
		if err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, tailSQL(rolled), deviceID)
		tail, err = scanValuesOf(rows)
		return wrap(ctx, "key tail", err)
	})
	return states, tail, err
}

// DeleteReadingsBefore deletes up to limit readings older than cutoff,
// oldest first, with their counts, and then the rollups of buckets before
// it. The devices are locked first, in id order, as the write batches and
// DeleteDevice lock them, so that none of them can deadlock with it.
func (s *Store) DeleteReadingsBefore(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	deleted, err := s.deleteOldReadings(ctx, cutoff, limit)
	if err != nil {
		return 0, err
	}
	// Under the rollups' watermark row, which ApplyRollups holds while it
	// writes, so that the two never wait for each other's rows. A device
	// being deleted deletes its rollups in an order of its own: rather
	// than risk a deadlock with it, this gives up after a moment and the
	// next pass deletes what is left.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, wrap(ctx, "delete old rollups: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	b := &pgx.Batch{}
	b.Queue(`SET LOCAL lock_timeout = '200ms'`)
	b.Queue(`SELECT 1 FROM telemetry_rollup_state FOR UPDATE`)
	b.Queue(`DELETE FROM telemetry_rollups WHERE bucket < $1`, cutoff)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if sqlState(err) == codeLockNotAvailable {
			return deleted, nil
		}
		return 0, wrap(ctx, "delete old rollups", err)
	}
	return deleted, wrap(ctx, "delete old rollups: commit", tx.Commit(ctx))
}

func (s *Store) deleteOldReadings(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, wrap(ctx, "delete old readings: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	type old struct{ ID, Device int64 }
	rows, _ := tx.Query(ctx, `SELECT id, device_id FROM telemetry_data WHERE "timestamp" < $1 ORDER BY "timestamp" LIMIT $2`, cutoff, limit)
	olds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[old])
	if err != nil || len(olds) == 0 {
		return 0, wrap(ctx, "find old readings", err)
	}
	ids, devices := make([]int64, len(olds)), map[int64]bool{}
	for i, o := range olds {
		ids[i], devices[o.Device] = o.ID, true
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`,
		slices.Sorted(maps.Keys(devices))); err != nil {
		return 0, wrap(ctx, "delete old readings: lock devices", err)
	}
	// A reading deleted meanwhile with its device is not counted twice:
	// only what this statement deletes comes off the counters.
	const deleteOldSQL = `WITH gone AS (
			DELETE FROM telemetry_data WHERE id = ANY($1) RETURNING device_id, "timestamp"
		), by_device AS (
			UPDATE devices AS d SET telemetry_count = d.telemetry_count - c.n
			FROM (SELECT device_id, count(*) AS n FROM gone GROUP BY 1) AS c WHERE d.id = c.device_id
		), by_hour AS (
			INSERT INTO telemetry_hourly (hour, n)
			SELECT date_trunc('hour', "timestamp", 'UTC'), -count(*) FROM gone GROUP BY 1 ORDER BY 1
			ON CONFLICT (hour) DO UPDATE SET n = telemetry_hourly.n + excluded.n
		)
		SELECT count(*) FROM gone`
	var n int
	if err := tx.QueryRow(ctx, deleteOldSQL, ids).Scan(&n); err != nil {
		return 0, wrap(ctx, "delete old readings", err)
	}
	return n, wrap(ctx, "delete old readings: commit", tx.Commit(ctx))
}
