package postgres

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A write batch does not update the counters of its devices and hours
// (migration 0007): it appends its counts to telemetry_pending, which
// readers add to the counters, and the fold moves them into the counters a
// few times a second. Without the fold the table would grow, and reads of
// the counters with it; it stays correct either way.
const (
	foldEvery = 250 * time.Millisecond
	// vacuumEvery folds that moved rows, telemetry_pending is vacuumed:
	// its rows live for a fraction of a second, and the dead ones slow the
	// scans that readers make until autovacuum, which comes once a minute
	// at best, gets there.
	vacuumEvery = 20
	// foldLockClass is the first key of the advisory lock that lets one
	// fold run at a time; the second, as for migrations, is the schema's.
	foldLockClass = 0x696f75
)

// pendingOfDevice is the SQL for the pending readings of the device d.
// The containment test skips the rows of other devices without unnesting
// them.
const pendingOfDevice = `(SELECT coalesce(sum(u.n), 0) FROM telemetry_pending AS p, unnest(p.device_ids, p.counts) AS u(id, n)
	WHERE p.device_ids @> ARRAY[d.id] AND u.id = d.id)`

// pendingByDevice is the SQL of a relation (device_id, n) of the pending
// readings of every device that has some, deleted devices included.
const pendingByDevice = `(SELECT u.id AS device_id, sum(u.n) AS n
	FROM telemetry_pending AS p, unnest(p.device_ids, p.counts) AS u(id, n) GROUP BY u.id)`

// pendingCounts collects the counts per device and UTC hour of the rows a
// batch stores, for its row of telemetry_pending.
type pendingCounts struct {
	devices []int64
	hours   []time.Time
	counts  []int32
	index   map[deviceHour]int // into the slices, once there are many
}

type deviceHour struct {
	device int64
	hour   int64 // Unix seconds
}

func (p *pendingCounts) add(device int64, hour time.Time) {
	if p.index == nil && len(p.devices) >= 16 {
		p.index = make(map[deviceHour]int, 2*len(p.devices))
		for i := range p.devices {
			p.index[deviceHour{p.devices[i], p.hours[i].Unix()}] = i
		}
	}
	if p.index != nil {
		k := deviceHour{device, hour.Unix()}
		if i, ok := p.index[k]; ok {
			p.counts[i]++
			return
		}
		p.index[k] = len(p.devices)
	} else {
		for i := range p.devices {
			if p.devices[i] == device && p.hours[i].Equal(hour) {
				p.counts[i]++
				return
			}
		}
	}
	p.devices, p.hours, p.counts = append(p.devices, device), append(p.hours, hour), append(p.counts, 1)
}

// folder runs the fold until stop is closed, and once more then.
type folder struct {
	s       *Store
	log     *slog.Logger
	wrote   atomic.Bool // a batch was stored since the last fold began
	stop    chan struct{}
	stopped chan struct{}
	failing time.Time // when the folds began to fail; zero while they succeed
	warned  time.Time // when that was last logged
}

func (f *folder) run() {
	defer close(f.stopped)
	tick := time.NewTicker(foldEvery)
	defer tick.Stop()
	folds := 0
	// Once at start: a node that stopped without folding may have left
	// rows behind.
	f.wrote.Store(true)
	for {
		select {
		case <-f.stop:
			f.once(&folds)
			return
		case <-tick.C:
			f.once(&folds)
		}
	}
}

func (f *folder) once(folds *int) {
	if !f.wrote.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, kept, err := f.s.foldKeeping(ctx)
	if kept > 0 {
		// Try those again at the next tick, writes or not.
		f.wrote.Store(true)
	}
	if err != nil {
		// The rows stay pending and counted; the next fold takes them.
		// Logged when it starts and then once a minute, not every try.
		f.wrote.Store(true)
		now := time.Now()
		if f.failing.IsZero() {
			f.failing = now
		}
		if now.Sub(f.warned) >= time.Minute {
			f.warned = now
			f.log.Warn("folding pending telemetry counts failed; retrying", "failing_for", now.Sub(f.failing).Round(time.Second), "err", err)
		}
		return
	}
	if !f.failing.IsZero() {
		f.log.Info("folding pending telemetry counts works again", "failed_for", time.Since(f.failing).Round(time.Second))
		f.failing, f.warned = time.Time{}, time.Time{}
	}
	if n == 0 {
		return
	}
	if *folds++; *folds%vacuumEvery == 0 {
		// VACUUM cannot run in a transaction; a store whose role does not
		// own the table gets a warning from PostgreSQL and no error.
		// TRUNCATE false: shrinking the file would take a lock that
		// stops the batches' inserts for a moment.
		if _, err := f.s.pool.Exec(ctx, `VACUUM (TRUNCATE false) telemetry_pending`); err != nil {
			f.log.Warn("vacuuming telemetry_pending failed", "err", err)
		}
	}
}

// fold moves every pending count it can see into the devices' counters and
// the hourly counts, in one transaction, and returns how many readings'
// counts it moved. Folds take turns on an advisory lock: two folds at once
// would wait on each other's rows anyway.
func (s *Store) fold(ctx context.Context) (int, error) {
	moved, _, err := s.foldKeeping(ctx)
	return moved, err
}

// foldKeeping is fold, and also says how many readings' counts it had to
// leave pending because another transaction held their device.
func (s *Store) foldKeeping(ctx context.Context) (moved, kept int, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, wrap(ctx, "fold: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	moved, kept, err = foldIn(ctx, tx)
	if err != nil || moved == 0 {
		// Nothing moved: what was kept is pending as it was.
		return 0, kept, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, wrap(ctx, "fold: commit", err)
	}
	return moved, kept, nil
}

// foldIn is the fold's work in tx, which the caller commits; it returns
// how many readings' counts it moved and how many it had to keep pending.
//
// It never waits for a device row: a device that another transaction
// holds (DeleteDevice for as long as it deletes the device's readings,
// TouchDevices for a moment) keeps its counts pending, in a row put back,
// so that one long transaction cannot stall the fold of every device.
func foldIn(ctx context.Context, tx pgx.Tx) (moved, kept int, err error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, foldLockClass); err != nil {
		return 0, 0, wrap(ctx, "fold: lock", err)
	}
	type entry struct {
		device int64
		hour   time.Time
		n      int64
	}
	var entries []entry
	res, _ := tx.Query(ctx, `
		WITH gone AS (DELETE FROM telemetry_pending RETURNING device_ids, hours, counts)
		SELECT u.id, u.hour, sum(u.n)::bigint FROM gone, unnest(gone.device_ids, gone.hours, gone.counts) AS u(id, hour, n)
		GROUP BY 1, 2`)
	var e entry
	if _, err := pgx.ForEachRow(res, []any{&e.device, &e.hour, &e.n}, func() error {
		entries = append(entries, e)
		return nil
	}); err != nil {
		return 0, 0, wrap(ctx, "fold: take pending counts", err)
	}
	if len(entries) == 0 {
		return 0, 0, nil
	}
	var ids []int64
	for _, e := range entries {
		ids = append(ids, e.device)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// Devices first, in id order, as every writer of device rows locks
	// them (see TouchDevices); then the hourly rows in key order, as
	// DeleteDevice does.
	rows, _ := tx.Query(ctx, `SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED`, ids)
	locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, 0, wrap(ctx, "fold: lock devices", err)
	}
	rows, _ = tx.Query(ctx, `SELECT id FROM devices WHERE id = ANY($1)`, ids)
	existing, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, 0, wrap(ctx, "fold: find devices", err)
	}
	// A device that no longer exists is not counted, its readings went
	// with it; its hours are, since DeleteDevice took all of its readings,
	// pending ones included, off the hourly counts.
	isLocked, exists := map[int64]bool{}, map[int64]bool{}
	for _, id := range locked {
		isLocked[id] = true
	}
	for _, id := range existing {
		exists[id] = true
	}
	held := func(id int64) bool { return exists[id] && !isLocked[id] }
	type hourShard struct {
		hour  time.Time
		shard int16
	}
	byDevice, byHour := map[int64]int64{}, map[hourShard]int64{}
	var back pendingCounts
	for _, e := range entries {
		if held(e.device) {
			kept += int(e.n)
			for n := e.n; n > 0; n -= math.MaxInt32 { // the column is integer
				back.devices, back.hours = append(back.devices, e.device), append(back.hours, e.hour)
				back.counts = append(back.counts, int32(min(n, math.MaxInt32)))
			}
			continue
		}
		if isLocked[e.device] {
			byDevice[e.device] += e.n
		}
		byHour[hourShard{e.hour.UTC(), int16(e.device % 16)}] += e.n
		moved += int(e.n)
	}
	devs := slices.Sorted(maps.Keys(byDevice))
	ns := make([]int64, len(devs))
	for i, id := range devs {
		ns[i] = byDevice[id]
	}
	keys := slices.SortedFunc(maps.Keys(byHour), func(a, b hourShard) int {
		if c := a.hour.Compare(b.hour); c != 0 {
			return c
		}
		return int(a.shard) - int(b.shard)
	})
	hours, shards, hns := make([]time.Time, len(keys)), make([]int16, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		hours[i], shards[i], hns[i] = k.hour, k.shard, byHour[k]
	}
	b := &pgx.Batch{}
	if len(back.devices) > 0 {
		b.Queue(`INSERT INTO telemetry_pending (device_ids, hours, counts) VALUES ($1, $2, $3)`, back.devices, back.hours, back.counts)
	}
	b.Queue(`UPDATE devices AS d SET telemetry_count = d.telemetry_count + v.n
		FROM unnest($1::bigint[], $2::bigint[]) AS v(id, n) WHERE d.id = v.id`, devs, ns)
	b.Queue(`INSERT INTO telemetry_hourly (hour, shard, n)
		SELECT * FROM unnest($1::timestamptz[], $2::smallint[], $3::bigint[])
		ON CONFLICT (hour, shard) DO UPDATE SET n = telemetry_hourly.n + excluded.n`, hours, shards, hns)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, wrap(ctx, "fold: add to counters", err)
	}
	return moved, kept, nil
}
