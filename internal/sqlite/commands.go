package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// commandColumns are what scanCommand reads, in its order.
const commandColumns = `id, device_id, command, parameters, status, created_at, expires_at, timeout_us,
	sent_at, acknowledged_at, completed_at, result, coalesce(idempotency_key, '')`

func scanCommand(row interface{ Scan(...any) error }) (*iotflow.Command, error) {
	var c iotflow.Command
	var created, expires, timeout int64
	var sent, acked, completed sql.NullInt64
	var result sql.NullString
	if err := row.Scan(&c.ID, &c.DeviceID, &c.Command, (*[]byte)(&c.Parameters), &c.Status, &created, &expires, &timeout,
		&sent, &acked, &completed, &result, &c.IdempotencyKey); err != nil {
		return nil, err
	}
	c.CreatedAt, c.ExpiresAt, c.Timeout = fromMicros(created), fromMicros(expires), time.Duration(timeout)*time.Microsecond
	c.SentAt, c.AcknowledgedAt, c.CompletedAt = fromNullMicros(sent), fromNullMicros(acked), fromNullMicros(completed)
	if result.Valid {
		c.Result = []byte(result.String)
	}
	return &c, nil
}

func scanCommands(rows *sql.Rows, err error) ([]*iotflow.Command, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*iotflow.Command, 0)
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func commandNotFound(id int64) error {
	return iotflow.Errorf(iotflow.ENOTFOUND, "Command not found", "No command has id %d", id)
}

// CreateCommand stores a pending command and counts it on its device.
func (s *Store) CreateCommand(ctx context.Context, c *iotflow.Command) (bool, error) {
	created := false
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if c.IdempotencyKey != "" {
			stored, err := scanCommand(tx.QueryRowContext(ctx, `SELECT `+commandColumns+` FROM commands
				WHERE device_id = ? AND idempotency_key = ?`, c.DeviceID, c.IdempotencyKey))
			if err == nil {
				*c = *stored
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return wrap("find idempotency key", err)
			}
		}
		var key any
		if c.IdempotencyKey != "" {
			key = c.IdempotencyKey
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO commands (device_id, command, parameters, status, created_at, expires_at, timeout_us, idempotency_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			c.DeviceID, c.Command, string(c.Parameters), iotflow.CommandPending, micros(c.CreatedAt), micros(c.ExpiresAt),
			c.Timeout.Microseconds(), key).Scan(&c.ID)
		if isForeignKey(err) {
			return iotflow.DeviceNotFound(c.DeviceID)
		} else if err != nil {
			return wrap("insert command", err)
		}
		c.Status, created = iotflow.CommandPending, true
		_, err = tx.ExecContext(ctx, `UPDATE devices SET pending_commands = pending_commands + 1 WHERE id = ?`, c.DeviceID)
		return wrap("count pending command", err)
	})
	return created, err
}

// Command returns one command.
func (s *Store) Command(ctx context.Context, id int64) (*iotflow.Command, error) {
	c, err := scanCommand(s.reader.QueryRowContext(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, commandNotFound(id)
	}
	return c, wrap("get command", err)
}

// ListCommands returns a device's commands, newest first.
func (s *Store) ListCommands(ctx context.Context, f iotflow.CommandFilter) ([]*iotflow.Command, error) {
	conds, args := []string{`device_id = ?`}, []any{f.DeviceID}
	if f.Status != "" {
		conds, args = append(conds, `status = ?`), append(args, f.Status)
	}
	if f.Before != 0 {
		conds, args = append(conds, `id < ?`), append(args, f.Before)
	}
	cs, err := scanCommands(s.reader.QueryContext(ctx, `SELECT `+commandColumns+` FROM commands`+whereClause(conds)+
		` ORDER BY id DESC LIMIT ?`, append(args, limit(f.Limit))...))
	return cs, wrap("list commands", err)
}

// TakeCommands marks a device's pending commands sent, oldest first.
func (s *Store) TakeCommands(ctx context.Context, deviceID int64, now time.Time, n int) ([]*iotflow.Command, error) {
	var taken []*iotflow.Command
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		taken, err = scanCommands(tx.QueryContext(ctx, `UPDATE commands SET status = 'sent', sent_at = ?
			WHERE id IN (SELECT id FROM commands WHERE device_id = ? AND status = 'pending' AND expires_at > ? ORDER BY id LIMIT ?)
			RETURNING `+commandColumns, micros(now), deviceID, micros(now), n))
		if err != nil {
			return wrap("take commands", err)
		}
		if len(taken) > 0 {
			_, err = tx.ExecContext(ctx, `UPDATE devices SET pending_commands = pending_commands - ? WHERE id = ?`, len(taken), deviceID)
		}
		return wrap("count taken commands", err)
	})
	sortByID(taken)
	return taken, err
}

// AnswerCommand records a device's answer.
func (s *Store) AnswerCommand(ctx context.Context, deviceID, id int64, a iotflow.CommandAnswer) (*iotflow.Command, error) {
	var out *iotflow.Command
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		c, err := scanCommand(tx.QueryRowContext(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ? AND device_id = ?`, id, deviceID))
		if errors.Is(err, sql.ErrNoRows) {
			return commandNotFound(id)
		} else if err != nil {
			return wrap("get command", err)
		}
		next, changed, err := iotflow.Answer(c, a)
		if err != nil || !changed {
			out = c
			return err
		}
		var result any
		if next.Result != nil {
			result = string(next.Result)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = ?, acknowledged_at = ?, completed_at = ?, result = ? WHERE id = ?`,
			next.Status, nullMicros(next.AcknowledgedAt), nullMicros(next.CompletedAt), result, id); err != nil {
			return wrap("answer command", err)
		}
		if c.Status == iotflow.CommandPending {
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET pending_commands = pending_commands - 1 WHERE id = ?`, deviceID); err != nil {
				return wrap("count answered command", err)
			}
		}
		out = next
		return nil
	})
	return out, err
}

// CancelCommand cancels a command that has not ended.
func (s *Store) CancelCommand(ctx context.Context, id int64, now time.Time) (*iotflow.Command, error) {
	var out *iotflow.Command
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		c, err := scanCommand(tx.QueryRowContext(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return commandNotFound(id)
		} else if err != nil {
			return wrap("get command", err)
		}
		if iotflow.CommandEnded(c.Status) {
			out = c
			return iotflow.Errorf(iotflow.ECONFLICT, "Command has ended", "Command %d is %s already", id, c.Status)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = 'cancelled', completed_at = ? WHERE id = ?`, micros(now), id); err != nil {
			return wrap("cancel command", err)
		}
		if c.Status == iotflow.CommandPending {
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET pending_commands = pending_commands - 1 WHERE id = ?`, c.DeviceID); err != nil {
				return wrap("count cancelled command", err)
			}
		}
		c.Status, c.CompletedAt = iotflow.CommandCancelled, &now
		out = c
		return nil
	})
	return out, err
}

// SweepCommands expires and times out what is due.
func (s *Store) SweepCommands(ctx context.Context, now time.Time) ([]*iotflow.Command, error) {
	var ended []*iotflow.Command
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		expired, err := scanCommands(tx.QueryContext(ctx, `UPDATE commands SET status = 'expired', completed_at = ?
			WHERE status IN ('pending', 'sent', 'acknowledged') AND expires_at <= ?
			RETURNING `+commandColumns, micros(now), micros(now)))
		if err != nil {
			return wrap("expire commands", err)
		}
		timedOut, err := scanCommands(tx.QueryContext(ctx, `UPDATE commands SET status = 'timed_out', completed_at = ?
			WHERE status = 'sent' AND sent_at + timeout_us <= ?
			RETURNING `+commandColumns, micros(now), micros(now)))
		if err != nil {
			return wrap("time out commands", err)
		}
		for _, c := range expired {
			if c.SentAt == nil { // was pending
				if _, err := tx.ExecContext(ctx, `UPDATE devices SET pending_commands = pending_commands - 1 WHERE id = ?`, c.DeviceID); err != nil {
					return wrap("count expired command", err)
				}
			}
		}
		ended = append(expired, timedOut...)
		return nil
	})
	sortByID(ended)
	return ended, err
}

// CommandCounts counts the commands by state.
func (s *Store) CommandCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT status, count(*) FROM commands GROUP BY status`)
	if err != nil {
		return nil, wrap("count commands", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap("count commands", err)
		}
		out[st] = n
	}
	return out, wrap("count commands", rows.Err())
}

// Shadow returns a device's shadow.
func (s *Store) Shadow(ctx context.Context, deviceID int64) (*iotflow.Shadow, error) {
	sh := &iotflow.Shadow{DeviceID: deviceID}
	var desiredAt, reportedAt sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT sh.desired, sh.reported, sh.version, sh.desired_version,
			sh.desired_times, sh.desired_updated_at, sh.reported_updated_at
		FROM devices d LEFT JOIN device_shadows sh ON sh.device_id = d.id WHERE d.id = ?`, deviceID).Scan(
		(*[]byte)(&sh.Desired), (*[]byte)(&sh.Reported), (*nullInt)(&sh.Version), (*nullInt)(&sh.DesiredVersion),
		(*[]byte)(&sh.DesiredTimes), &desiredAt, &reportedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, iotflow.DeviceNotFound(deviceID)
	} else if err != nil {
		return nil, wrap("get shadow", err)
	}
	sh.DesiredUpdatedAt, sh.ReportedUpdatedAt = fromNullMicros(desiredAt), fromNullMicros(reportedAt)
	emptyDocs(sh)
	return sh, nil
}

// nullInt scans a NULL as 0.
type nullInt int64

func (n *nullInt) Scan(v any) error {
	var x sql.NullInt64
	if err := x.Scan(v); err != nil {
		return err
	}
	*n = nullInt(x.Int64)
	return nil
}

// emptyDocs gives a shadow without a document an empty one.
func emptyDocs(sh *iotflow.Shadow) {
	if len(sh.Desired) == 0 {
		sh.Desired = []byte("{}")
	}
	if len(sh.Reported) == 0 {
		sh.Reported = []byte("{}")
	}
	if len(sh.DesiredTimes) == 0 {
		sh.DesiredTimes = []byte("{}")
	}
}

// SaveShadow stores a shadow if its version is still prev.
func (s *Store) SaveShadow(ctx context.Context, sh *iotflow.Shadow, prev int64) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		var version sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT sh.version FROM devices d LEFT JOIN device_shadows sh ON sh.device_id = d.id
			WHERE d.id = ?`, sh.DeviceID).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return iotflow.DeviceNotFound(sh.DeviceID)
		} else if err != nil {
			return wrap("get shadow version", err)
		}
		if version.Int64 != prev {
			return shadowMoved(sh.DeviceID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_shadows
				(device_id, desired, reported, version, desired_version, desired_times, desired_updated_at, reported_updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET desired = excluded.desired, reported = excluded.reported,
				version = excluded.version, desired_version = excluded.desired_version, desired_times = excluded.desired_times,
				desired_updated_at = excluded.desired_updated_at, reported_updated_at = excluded.reported_updated_at`,
			sh.DeviceID, string(sh.Desired), string(sh.Reported), sh.Version, sh.DesiredVersion, string(docOrEmpty(sh.DesiredTimes)),
			nullMicros(sh.DesiredUpdatedAt), nullMicros(sh.ReportedUpdatedAt)); err != nil {
			return wrap("save shadow", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE devices SET shadow_version = ? WHERE id = ?`, sh.DesiredVersion, sh.DeviceID)
		return wrap("save shadow version", err)
	})
}

func shadowMoved(deviceID int64) error {
	return iotflow.Errorf(iotflow.ECONFLICT, "Shadow changed", "The shadow of device %d changed meanwhile", deviceID)
}

func sortByID(cs []*iotflow.Command) {
	slices.SortFunc(cs, func(a, b *iotflow.Command) int { return cmp.Compare(a.ID, b.ID) })
}

// docOrEmpty gives an absent document as an empty object.
func docOrEmpty(doc []byte) []byte {
	if len(doc) == 0 {
		return []byte("{}")
	}
	return doc
}
