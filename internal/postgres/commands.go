package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// commandColumns are what scanCommand reads, in its order.
const commandColumns = `id, device_id, command, parameters, status, created_at, expires_at, timeout,
	sent_at, acknowledged_at, completed_at, result, coalesce(idempotency_key, '')`

func scanCommand(row pgx.Row) (*iotflow.Command, error) {
	var c iotflow.Command
	if err := row.Scan(&c.ID, &c.DeviceID, &c.Command, (*[]byte)(&c.Parameters), &c.Status, &c.CreatedAt, &c.ExpiresAt, &c.Timeout,
		&c.SentAt, &c.AcknowledgedAt, &c.CompletedAt, (*[]byte)(&c.Result), &c.IdempotencyKey); err != nil {
		return nil, err
	}
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	c.SentAt, c.AcknowledgedAt, c.CompletedAt = utcPtr(c.SentAt), utcPtr(c.AcknowledgedAt), utcPtr(c.CompletedAt)
	if len(c.Result) == 0 {
		c.Result = nil
	}
	return &c, nil
}

func collectCommands(rows pgx.Rows) ([]*iotflow.Command, error) {
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*iotflow.Command, error) { return scanCommand(row) })
	slices.SortFunc(cs, func(a, b *iotflow.Command) int { return int(a.ID - b.ID) })
	return cs, err
}

func commandNotFound(id int64) error {
	return iotflow.Errorf(iotflow.ENOTFOUND, "Command not found", "No command has id %d", id)
}

func jsonOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// CreateCommand stores a pending command and counts it on its device.
func (s *Store) CreateCommand(ctx context.Context, c *iotflow.Command) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, wrap(ctx, "create command: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The device's row first: it serialises two commands of one
	// idempotency key, and counts the pending ones.
	var one int
	err = tx.QueryRow(ctx, `UPDATE devices SET pending_commands = pending_commands + 1 WHERE id = $1 RETURNING 1`, c.DeviceID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, iotflow.DeviceNotFound(c.DeviceID)
	} else if err != nil {
		return false, wrap(ctx, "count pending command", err)
	}
	if c.IdempotencyKey != "" {
		stored, err := scanCommand(tx.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands
			WHERE device_id = $1 AND idempotency_key = $2`, c.DeviceID, c.IdempotencyKey))
		if err == nil {
			*c = *stored
			return false, nil // rolled back: the count with it
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return false, wrap(ctx, "find idempotency key", err)
		}
	}
	err = tx.QueryRow(ctx, `INSERT INTO commands (device_id, command, parameters, status, created_at, expires_at, timeout, idempotency_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		c.DeviceID, c.Command, string(c.Parameters), iotflow.CommandPending, c.CreatedAt, c.ExpiresAt, c.Timeout, text(c.IdempotencyKey)).Scan(&c.ID)
	if err != nil {
		return false, wrap(ctx, "insert command", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, wrap(ctx, "create command: commit", err)
	}
	c.Status = iotflow.CommandPending
	return true, nil
}

// Command returns one command.
func (s *Store) Command(ctx context.Context, id int64) (*iotflow.Command, error) {
	c, err := scanCommand(s.pool.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, commandNotFound(id)
	}
	return c, wrap(ctx, "get command", err)
}

// ListCommands returns a device's commands, newest first.
func (s *Store) ListCommands(ctx context.Context, f iotflow.CommandFilter) ([]*iotflow.Command, error) {
	w := &where{}
	w.add(`device_id = $%d`, f.DeviceID)
	if f.Status != "" {
		w.add(`status = $%d`, f.Status)
	}
	if f.Before != 0 {
		w.add(`id < $%d`, f.Before)
	}
	limit, _ := bound(f.Limit, 0)
	rows, _ := s.pool.Query(ctx, `SELECT `+commandColumns+` FROM commands`+w.String()+
		fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, w.next()), append(w.args, limit)...)
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*iotflow.Command, error) { return scanCommand(row) })
	if err != nil {
		return nil, wrap(ctx, "list commands", err)
	}
	return cs, nil
}

// TakeCommands marks a device's pending commands sent, oldest first; SKIP
// LOCKED keeps two takers from taking one command.
func (s *Store) TakeCommands(ctx context.Context, deviceID int64, now time.Time, n int) ([]*iotflow.Command, error) {
	rows, _ := s.pool.Query(ctx, `
		WITH taken AS (
			UPDATE commands SET status = 'sent', sent_at = $2
			WHERE id IN (SELECT id FROM commands WHERE device_id = $1 AND status = 'pending' AND expires_at > $2
				ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
			RETURNING `+commandColumns+`
		), counted AS (
			UPDATE devices SET pending_commands = pending_commands - (SELECT count(*) FROM taken)
			WHERE id = $1 AND EXISTS (SELECT 1 FROM taken)
		)
		SELECT * FROM taken`, deviceID, now, n)
	cs, err := collectCommands(rows)
	return cs, wrap(ctx, "take commands", err)
}

// AnswerCommand records a device's answer.
func (s *Store) AnswerCommand(ctx context.Context, deviceID, id int64, a iotflow.CommandAnswer) (*iotflow.Command, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(ctx, "answer command: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	c, err := scanCommand(tx.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = $1 AND device_id = $2 FOR UPDATE`, id, deviceID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, commandNotFound(id)
	} else if err != nil {
		return nil, wrap(ctx, "get command", err)
	}
	next, changed, err := iotflow.Answer(c, a)
	if err != nil || !changed {
		return c, err
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE commands SET status = $2, acknowledged_at = $3, completed_at = $4, result = $5 WHERE id = $1`,
		id, next.Status, next.AcknowledgedAt, next.CompletedAt, jsonOrNil(next.Result))
	if c.Status == iotflow.CommandPending {
		b.Queue(`UPDATE devices SET pending_commands = pending_commands - 1 WHERE id = $1`, deviceID)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap(ctx, "answer command", err)
	}
	return next, wrap(ctx, "answer command: commit", tx.Commit(ctx))
}

// CancelCommand cancels a command that has not ended.
func (s *Store) CancelCommand(ctx context.Context, id int64, now time.Time) (*iotflow.Command, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(ctx, "cancel command: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	c, err := scanCommand(tx.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, commandNotFound(id)
	} else if err != nil {
		return nil, wrap(ctx, "get command", err)
	}
	if iotflow.CommandEnded(c.Status) {
		return c, iotflow.Errorf(iotflow.ECONFLICT, "Command has ended", "Command %d is %s already", id, c.Status)
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE commands SET status = 'cancelled', completed_at = $2 WHERE id = $1`, id, now)
	if c.Status == iotflow.CommandPending {
		b.Queue(`UPDATE devices SET pending_commands = pending_commands - 1 WHERE id = $1`, c.DeviceID)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap(ctx, "cancel command", err)
	}
	c.Status, c.CompletedAt = iotflow.CommandCancelled, &now
	return c, wrap(ctx, "cancel command: commit", tx.Commit(ctx))
}

// SweepCommands expires and times out what is due. Concurrent sweeps meet
// on the commands' rows: a row another sweep ended no longer matches.
// The devices' counts are lowered after locking them in id order, as the
// write batches lock them.
func (s *Store) SweepCommands(ctx context.Context, now time.Time) ([]*iotflow.Command, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(ctx, "sweep commands: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, _ := tx.Query(ctx, `UPDATE commands SET status = 'expired', completed_at = $1
		WHERE status IN ('pending', 'sent', 'acknowledged') AND expires_at <= $1 RETURNING `+commandColumns, now)
	expired, err := collectCommands(rows)
	if err != nil {
		return nil, wrap(ctx, "expire commands", err)
	}
	rows, _ = tx.Query(ctx, `UPDATE commands SET status = 'timed_out', completed_at = $1
		WHERE status = 'sent' AND sent_at + timeout <= $1 RETURNING `+commandColumns, now)
	timedOut, err := collectCommands(rows)
	if err != nil {
		return nil, wrap(ctx, "time out commands", err)
	}
	pending := map[int64]int64{}
	for _, c := range expired {
		if c.SentAt == nil {
			pending[c.DeviceID]++
		}
	}
	if len(pending) > 0 {
		ids := slices.Sorted(maps.Keys(pending))
		ns := make([]int64, len(ids))
		for i, id := range ids {
			ns[i] = pending[id]
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, ids)
		b.Queue(`UPDATE devices AS d SET pending_commands = d.pending_commands - v.n
			FROM unnest($1::bigint[], $2::bigint[]) AS v(id, n) WHERE d.id = v.id`, ids, ns)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, wrap(ctx, "count expired commands", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, wrap(ctx, "sweep commands: commit", err)
	}
	ended := append(expired, timedOut...)
	slices.SortFunc(ended, func(a, b *iotflow.Command) int { return int(a.ID - b.ID) })
	return ended, nil
}

// CommandCounts counts the commands by state.
func (s *Store) CommandCounts(ctx context.Context) (map[string]int64, error) {
	rows, _ := s.pool.Query(ctx, `SELECT status, count(*) FROM commands GROUP BY status`)
	out := map[string]int64{}
	var st string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error { out[st] = n; return nil })
	return out, wrap(ctx, "count commands", err)
}

// Shadow returns a device's shadow.
func (s *Store) Shadow(ctx context.Context, deviceID int64) (*iotflow.Shadow, error) {
	sh := &iotflow.Shadow{DeviceID: deviceID}
	var version, desiredVersion *int64
	err := s.pool.QueryRow(ctx, `SELECT sh.desired, sh.reported, sh.version, sh.desired_version,
			sh.desired_times, sh.desired_updated_at, sh.reported_updated_at
		FROM devices d LEFT JOIN device_shadows sh ON sh.device_id = d.id WHERE d.id = $1`, deviceID).Scan(
		(*[]byte)(&sh.Desired), (*[]byte)(&sh.Reported), &version, &desiredVersion, (*[]byte)(&sh.DesiredTimes),
		&sh.DesiredUpdatedAt, &sh.ReportedUpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(deviceID)
	} else if err != nil {
		return nil, wrap(ctx, "get shadow", err)
	}
	if version != nil {
		sh.Version, sh.DesiredVersion = *version, *desiredVersion
	}
	sh.DesiredUpdatedAt, sh.ReportedUpdatedAt = utcPtr(sh.DesiredUpdatedAt), utcPtr(sh.ReportedUpdatedAt)
	if len(sh.Desired) == 0 {
		sh.Desired = []byte("{}")
	}
	if len(sh.Reported) == 0 {
		sh.Reported = []byte("{}")
	}
	if len(sh.DesiredTimes) == 0 {
		sh.DesiredTimes = []byte("{}")
	}
	return sh, nil
}

// SaveShadow stores a shadow if its version is still prev: the update's
// condition on the version, evaluated again on the newest row once a
// concurrent save commits, makes it a compare-and-swap.
func (s *Store) SaveShadow(ctx context.Context, sh *iotflow.Shadow, prev int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(ctx, "save shadow: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	args := []any{sh.DeviceID, string(sh.Desired), string(sh.Reported), sh.Version, sh.DesiredVersion,
		string(docOrEmpty(sh.DesiredTimes)), sh.DesiredUpdatedAt, sh.ReportedUpdatedAt}
	var tag pgconn.CommandTag
	if prev == 0 {
		tag, err = tx.Exec(ctx, `INSERT INTO device_shadows
			(device_id, desired, reported, version, desired_version, desired_times, desired_updated_at, reported_updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (device_id) DO NOTHING`, args...)
		if sqlState(err) == codeForeignKeyViolation {
			return iotflow.DeviceNotFound(sh.DeviceID)
		}
	} else {
		tag, err = tx.Exec(ctx, `UPDATE device_shadows SET desired = $2, reported = $3, version = $4, desired_version = $5,
				desired_times = $6, desired_updated_at = $7, reported_updated_at = $8
			WHERE device_id = $1 AND version = $9`, append(args, prev)...)
	}
	if err != nil {
		return wrap(ctx, "save shadow", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Device(ctx, sh.DeviceID); err != nil {
			return err
		}
		return iotflow.Errorf(iotflow.ECONFLICT, "Shadow changed", "The shadow of device %d changed meanwhile", sh.DeviceID)
	}
	tag, err = tx.Exec(ctx, `UPDATE devices SET shadow_version = $2 WHERE id = $1`, sh.DeviceID, sh.DesiredVersion)
	if err != nil {
		return wrap(ctx, "save shadow version", err)
	} else if tag.RowsAffected() == 0 {
		return iotflow.DeviceNotFound(sh.DeviceID)
	}
	return wrap(ctx, "save shadow: commit", tx.Commit(ctx))
}

// docOrEmpty gives an absent document as an empty object.
func docOrEmpty(doc []byte) []byte {
	if len(doc) == 0 {
		return []byte("{}")
	}
	return doc
}
