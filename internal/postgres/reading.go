package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// emptyObject is stored for a missing payload or metadata: the columns are
// NOT NULL and hold JSON objects.
var emptyObject = json.RawMessage(`{}`)

func jsonObject(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return emptyObject
	}
	return m
}

// A batch is stored by three statements sent in one round trip, which
// run as one implicit transaction (one Sync ends the pipeline): the fixed
// cost of a transaction's round trips, not the rows, dominates small
// batches.
//
// The first takes the advisory write lock shared, held to the commit:
// UnrolledReadings takes it exclusively for a moment, so that no id below
// the highest one it then sees can still be uncommitted. The second locks
// the batch's devices (distinct and ascending) in id order, FOR NO KEY
// UPDATE since the batch raises their counters, so that DeleteDevice,
// which takes its device FOR UPDATE, waits for the batch or the batch for
// it, and so do two batches of one device. The devices are locked in a
// statement of their own: the third, with a snapshot taken once they are
// locked, updates the versions it sees. Locking in a CTE of the same
// statement deadlocks with another batch of the device: the statement
// must then lock again the newer version of a row its snapshot saw an
// older one of, and queue for it behind the other batch, which waits for
// the lock this one holds.
//
// The third stores the readings. When a device is missing (or was deleted
// while the batch waited), nothing is inserted and complete comes back
// false. Readings have no foreign key (migration 0006): this check, once
// per device, replaces a trigger that ran once per reading. Ids come from
// the sequence in slice order (the function scan yields rows by
// ordinality). A message id the device has stored already, or that an
// earlier row carries, is skipped by ON CONFLICT. The counters, the
// devices' telemetry_count and the hourly counts, are raised by the rows
// inserted, in the same statement (data-modifying CTEs always run to
// completion), hours in ascending order: with one writer per node nothing
// else waits for them. A skipped row comes back with the stored row it
// repeats (prev) when the statement's snapshot sees that row: when it was
// committed before the statement began. resolveDuplicates does the
// others: a repeat of an earlier row of the same batch from the batch, and
// one of a row that another transaction committed after the statement
// began with a second query. (OFFSET 0 keeps the subquery from being
// flattened, so that ins.id IS NULL skips its index lookup for the
// inserted rows.)
const (
	writeLockSQL   = `SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema()))`
	lockDevicesSQL = `SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`
)

const insertReadingsSQL = `
WITH complete AS MATERIALIZED (
	SELECT count(*) = cardinality($8::bigint[]) AS ok FROM devices WHERE id = ANY($8::bigint[])
), input AS MATERIALIZED (
	SELECT nextval('telemetry_data_id_seq'::regclass) AS id, u.*
	FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[])
		WITH ORDINALITY AS u(device_id, ts, received_at, data_type, payload, metadata, message_id, ord)
), inserted AS (
	INSERT INTO telemetry_data (id, device_id, "timestamp", received_at, data_type, payload, metadata, message_id)
	SELECT id, device_id, ts, received_at, data_type, payload::jsonb, metadata::jsonb, message_id FROM input
	WHERE (SELECT ok FROM complete)
	ON CONFLICT (device_id, message_id) WHERE message_id IS NOT NULL DO NOTHING
	RETURNING id, device_id, "timestamp"
), counted AS (
	UPDATE devices AS d SET telemetry_count = d.telemetry_count + c.n
	FROM (SELECT device_id, count(*) AS n FROM inserted GROUP BY device_id) AS c
	WHERE d.id = c.device_id
), hourly AS (
	INSERT INTO telemetry_hourly (hour, n)
	SELECT date_trunc('hour', "timestamp", 'UTC'), count(*) FROM inserted GROUP BY 1 ORDER BY 1
	ON CONFLICT (hour) DO UPDATE SET n = telemetry_hourly.n + excluded.n
)
SELECT i.id, (ins.id IS NOT NULL) AS stored, (SELECT ok FROM complete) AS complete, prev.id, prev."timestamp"
FROM input i LEFT JOIN inserted ins ON ins.id = i.id
LEFT JOIN LATERAL (
	SELECT t.id, t."timestamp" FROM telemetry_data t
	WHERE ins.id IS NULL AND t.device_id = i.device_id AND t.message_id = i.message_id
	LIMIT 1 OFFSET 0
) prev ON true
ORDER BY i.ord`

// InsertReadings stores the readings in one transaction, sets their IDs
// (increasing as in the slice) and raises the counters. Readings whose
// MessageID is stored already come back as duplicates. ENOTFOUND, with
// nothing stored, when a device does not exist; EINVALID when PostgreSQL
// refuses a reading's content.
func (s *Store) InsertReadings(ctx context.Context, rs []*iotflow.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	n := len(rs)
	devs, ts, recv := make([]int64, n), make([]time.Time, n), make([]time.Time, n)
	types, payloads, metas, msgs := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	for i, r := range rs {
		devs[i], ts[i], recv[i], types[i] = r.DeviceID, r.Timestamp, r.ReceivedAt, r.DataType
		payloads[i], metas[i] = string(jsonObject(r.Payload)), string(jsonObject(r.Metadata))
		if r.MessageID != "" {
			msgs[i] = &r.MessageID
		}
	}
	ids, stored := make([]int64, n), make([]bool, n)
	prev := make([]*iotflow.Reading, n) // the stored reading a skipped one repeats, when known
	complete := true
	var (
		i      int
		id     int64
		ok     bool
		prevID *int64
		prevAt *time.Time
	)
	devices := uniqueSorted(devs)
	b := &pgx.Batch{}
	b.Queue(writeLockSQL, writeLockClass)
	b.Queue(lockDevicesSQL, devices)
	b.Queue(insertReadingsSQL, devs, ts, recv, types, payloads, metas, msgs, devices).Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id, &ok, &complete, &prevID, &prevAt}, func() error {
			ids[i], stored[i] = id, ok
			if prevID != nil && prevAt != nil {
				prev[i] = &iotflow.Reading{ID: *prevID, Timestamp: prevAt.UTC()}
			}
			i++
			return nil
		})
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return wrap(ctx, "insert readings", err)
	}
	if !complete {
		return iotflow.Errorf(iotflow.ENOTFOUND, "Device not found", "A reading names a device that does not exist.")
	}
	for i, r := range rs {
		r.ID, r.Duplicate = ids[i], !stored[i]
	}
	return s.resolveDuplicates(ctx, rs, prev)
}

// uniqueSorted returns the distinct ids in ascending order.
func uniqueSorted(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// resolveDuplicates gives every reading that was not stored, because its
// message id was, the stored reading's id and timestamp: prev[i] when the
// batch statement found it, else the reading of rs that was stored with
// that message id, else what a lookup finds.
func (s *Store) resolveDuplicates(ctx context.Context, rs, prev []*iotflow.Reading) error {
	type msgKey struct {
		device int64
		msg    string
	}
	var (
		inBatch    map[msgKey]*iotflow.Reading
		unresolved []*iotflow.Reading
		devs       []int64
		msgs       []string
	)
	for i, r := range rs {
		if !r.Duplicate {
			continue
		}
		if prev[i] != nil {
			r.ID, r.Timestamp = prev[i].ID, prev[i].Timestamp
			continue
		}
		if inBatch == nil {
			inBatch = map[msgKey]*iotflow.Reading{}
			for _, stored := range rs {
				if !stored.Duplicate && stored.MessageID != "" {
					inBatch[msgKey{stored.DeviceID, stored.MessageID}] = stored
				}
			}
		}
		if f, ok := inBatch[msgKey{r.DeviceID, r.MessageID}]; ok {
			r.ID, r.Timestamp = f.ID, iotflow.Truncate(f.Timestamp) // as stored
			continue
		}
		unresolved = append(unresolved, r)
		devs, msgs = append(devs, r.DeviceID), append(msgs, r.MessageID)
	}
	if len(unresolved) == 0 {
		return nil
	}
	found := map[msgKey]*iotflow.Reading{}
	rows, _ := s.pool.Query(ctx, `
		SELECT t.device_id, t.message_id, t.id, t."timestamp"
		FROM telemetry_data t
		JOIN unnest($1::bigint[], $2::text[]) AS m(device_id, message_id)
		  ON t.device_id = m.device_id AND t.message_id = m.message_id`, devs, msgs)
	var (
		k  msgKey
		id int64
		at time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&k.device, &k.msg, &id, &at}, func() error {
		found[k] = &iotflow.Reading{ID: id, Timestamp: at.UTC()}
		return nil
	})
	if err != nil {
		return wrap(ctx, "look up message ids", err)
	}
	for _, r := range unresolved {
		f, ok := found[msgKey{r.DeviceID, r.MessageID}]
		if !ok {
			// Committed readings are never deleted but with their device.
			return iotflow.Errorf(iotflow.ENOTFOUND, "Device not found", "A reading names a device that does not exist.")
		}
		r.ID, r.Timestamp = f.ID, f.Timestamp
	}
	return nil
}

// readingWhere returns the conditions of f on telemetry_data aliased t.
func readingWhere(f iotflow.ReadingFilter) *where {
	w := &where{}
	if f.DeviceID != 0 {
		w.add(`t.device_id = $%d`, f.DeviceID)
	}
	if f.DataType != "" {
		w.add(`t.data_type = $%d`, f.DataType)
	}
	if f.Since != nil {
		w.add(`t."timestamp" >= $%d`, *f.Since)
	}
	if f.Start != nil {
		w.add(`t."timestamp" >= $%d`, *f.Start)
	}
	if f.End != nil {
		w.add(`t."timestamp" < $%d`, *f.End)
	}
	if k := f.After; k != nil {
		cmp := "<"
		if f.Ascending {
			cmp = ">"
		}
		w.args = append(w.args, k.At, k.ID)
		w.conds = append(w.conds, fmt.Sprintf(`(t."timestamp", t.id) %s ($%d, $%d)`, cmp, len(w.args)-1, len(w.args)))
	}
	return w
}

// ListReadings returns one page of the readings that match f, newest
// (Timestamp, then ID) first unless f.Ascending, with DeviceName filled in.
func (s *Store) ListReadings(ctx context.Context, f iotflow.ReadingFilter) ([]*iotflow.Reading, error) {
	w := readingWhere(f)
	limit, offset := bound(f.Limit, f.Offset)
	n := w.next()
	// One device's readings take its name once, not by a join per row.
	from := `FROM telemetry_data AS t JOIN devices AS d ON d.id = t.device_id`
	name := `d.name`
	if f.DeviceID != 0 {
		from, name = `FROM telemetry_data AS t`, `(SELECT name FROM devices WHERE id = $1)` // readingWhere's first
	}
	rows, _ := s.pool.Query(ctx, `
		SELECT t.id, t.device_id, t."timestamp", t.received_at, t.data_type, t.payload, t.metadata,
			coalesce(t.message_id, ''), `+name+`
		`+from+w.String()+
		fmt.Sprintf(` ORDER BY t."timestamp" %[1]s, t.id %[1]s LIMIT $%[2]d OFFSET $%[3]d`, direction(f.Ascending), n, n+1),
		append(w.args, limit, offset)...)
	readings, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*iotflow.Reading, error) {
		var r iotflow.Reading
		// Scanning jsonb into *[]byte copies the text; into *json.RawMessage
		// pgx would run json.Unmarshal over what PostgreSQL has validated.
		err := row.Scan(&r.ID, &r.DeviceID, &r.Timestamp, &r.ReceivedAt, &r.DataType, (*[]byte)(&r.Payload), (*[]byte)(&r.Metadata),
			&r.MessageID, &r.DeviceName)
		r.Timestamp, r.ReceivedAt = r.Timestamp.UTC(), r.ReceivedAt.UTC()
		return &r, err
	})
	if err != nil {
		return nil, wrap(ctx, "list readings", err)
	}
	return readings, nil
}

// direction is the ORDER BY direction of the readings' order.
func direction(ascending bool) string {
	if ascending {
		return "ASC"
	}
	return "DESC"
}

// CountReadings returns how many readings match f. Without a data type or
// time filter the answer comes from the devices' counters, since counting
// tens of millions of rows takes seconds.
func (s *Store) CountReadings(ctx context.Context, f iotflow.ReadingFilter) (int64, error) {
	var n int64
	var err error
	switch {
	case f.DataType != "" || f.Since != nil || f.Start != nil || f.End != nil || f.After != nil:
		w := readingWhere(f)
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM telemetry_data AS t`+w.String(), w.args...).Scan(&n)
	case f.DeviceID == 0:
		err = s.pool.QueryRow(ctx, `SELECT coalesce(sum(telemetry_count), 0)::bigint FROM devices`).Scan(&n)
	default:
		err = s.pool.QueryRow(ctx, `SELECT telemetry_count FROM devices WHERE id = $1`, f.DeviceID).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
	}
	return n, wrap(ctx, "count readings", err)
}

// ReadingStats summarises the readings of one device: the count from its
// counter, the oldest and newest Timestamp from the index.
func (s *Store) ReadingStats(ctx context.Context, deviceID int64) (iotflow.ReadingStats, error) {
	var st iotflow.ReadingStats
	err := s.pool.QueryRow(ctx, `
		SELECT d.telemetry_count,
			(SELECT t."timestamp" FROM telemetry_data AS t WHERE t.device_id = d.id
				ORDER BY t."timestamp" ASC LIMIT 1),
			(SELECT t."timestamp" FROM telemetry_data AS t WHERE t.device_id = d.id
				ORDER BY t."timestamp" DESC LIMIT 1)
		FROM devices AS d
		WHERE d.id = $1`, deviceID).Scan(&st.Count, &st.First, &st.Latest)
	if errors.Is(err, pgx.ErrNoRows) {
		return iotflow.ReadingStats{}, nil
	} else if err != nil {
		return iotflow.ReadingStats{}, wrap(ctx, "reading stats", err)
	}
	st.First, st.Latest = utcPtr(st.First), utcPtr(st.Latest)
	return st, nil
}

// nextHour is the first whole UTC hour at or after t: readings from t on
// are the hourly counts from there plus a count of the partial hour before.
func nextHour(t time.Time) time.Time {
	h := t.UTC().Truncate(time.Hour)
	if h.Before(t) {
		h = h.Add(time.Hour)
	}
	return h
}

// Dashboard returns the fleet-wide figures of the admin dashboard.
func (s *Store) Dashboard(ctx context.Context, onlineSince, recentSince time.Time) (*iotflow.DashboardStats, error) {
	var st iotflow.DashboardStats
	err := s.pool.QueryRow(ctx, `
		SELECT count(*),
			count(*) FILTER (WHERE status = 'active'),
			count(*) FILTER (WHERE status = 'inactive'),
			count(*) FILTER (WHERE status = 'maintenance'),
			count(*) FILTER (WHERE last_seen >= $1 AND (offline_at IS NULL OR offline_at < last_seen)),
			coalesce(sum(telemetry_count), 0)::bigint,
			(SELECT coalesce(sum(n), 0)::bigint FROM telemetry_hourly WHERE hour >= $3) +
			(SELECT count(*) FROM telemetry_data WHERE "timestamp" >= $2 AND "timestamp" < $3)
		FROM devices`, onlineSince, recentSince, nextHour(recentSince)).Scan(
		&st.TotalDevices, &st.ActiveDevices, &st.InactiveDevices, &st.MaintenanceDevices, &st.OnlineDevices,
		&st.TotalReadings, &st.RecentReadings)
	if err != nil {
		return nil, wrap(ctx, "dashboard figures", err)
	}
	// COLLATE "C" orders types bytewise, as SQLite does, whatever the
	// database's collation.
	rows, _ := s.pool.Query(ctx, `
		SELECT device_type, count(*) FROM devices
		GROUP BY device_type
		ORDER BY count(*) DESC, device_type COLLATE "C" ASC`)
	st.DeviceTypes, err = pgx.CollectRows(rows, pgx.RowToStructByPos[iotflow.TypeCount])
	if err != nil {
		return nil, wrap(ctx, "dashboard device types", err)
	}
	return &st, nil
}
