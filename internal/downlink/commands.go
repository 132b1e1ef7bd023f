package downlink

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// CommandInput is what an operator sends to issue a command.
type CommandInput struct {
	Command    string
	Parameters json.RawMessage
	TTL        time.Duration // 0: iotflow.DefaultCommandTTL
	Timeout    time.Duration // 0: iotflow.DefaultCommandWait, or the TTL when shorter
	// IdempotencyKey, when set, names the command: the same key again
	// returns the command it created.
	IdempotencyKey string
}

// Issue stores a command for a device and wakes its long polls. It returns
// the command and whether it was created now (false: the idempotency key
// named one already).
func (s *Service) Issue(ctx context.Context, deviceID int64, in CommandInput) (*iotflow.Command, bool, error) {
	if in.TTL == 0 {
		in.TTL = iotflow.DefaultCommandTTL
	}
	if in.Timeout == 0 {
		in.Timeout = min(iotflow.DefaultCommandWait, in.TTL)
	}
	params, err := iotflow.ValidateCommand(in.Command, in.Parameters, in.TTL, in.Timeout)
	if err != nil {
		return nil, false, err
	}
	if err := iotflow.CheckText("Idempotency-Key", in.IdempotencyKey, iotflow.MaxIdempotencyKey); err != nil {
		return nil, false, err
	}
	now := iotflow.Truncate(s.now())
	c := &iotflow.Command{DeviceID: deviceID, Command: in.Command, Parameters: params, CreatedAt: now,
		ExpiresAt: now.Add(in.TTL), Timeout: in.Timeout, IdempotencyKey: in.IdempotencyKey}
	created, err := s.store.CreateCommand(ctx, c)
	if err != nil {
		return nil, false, err
	}
	if created {
		s.notify(ctx, deviceTopic(deviceID), commandTopic(c.ID))
	}
	return c, created, nil
}

// Command returns a command by id.
func (s *Service) Command(ctx context.Context, id int64) (*iotflow.Command, error) {
	return s.store.Command(ctx, id)
}

// DeviceCommand returns a command of the device, or ENOTFOUND when it is
// another device's: a device never learns of another's commands.
func (s *Service) DeviceCommand(ctx context.Context, deviceID, id int64) (*iotflow.Command, error) {
	c, err := s.store.Command(ctx, id)
	if err == nil && c.DeviceID != deviceID {
		return nil, iotflow.Errorf(iotflow.ENOTFOUND, "Command not found", "No command has id %d", id)
	}
	return c, err
}

// CommandPage is a page of a device's commands, newest first.
type CommandPage struct {
	Commands   []*iotflow.Command
	HasMore    bool
	NextCursor string // "" on the last page
}

// ListCommands returns a page of the device's commands that match status
// ("" for any), newest first, after cursor (from a previous page's
// NextCursor; "" for the first page).
func (s *Service) ListCommands(ctx context.Context, deviceID int64, status, cursor string, limit int) (*CommandPage, error) {
	if status != "" && !validState(status) {
		return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid request",
			"Parameter 'status' must be one of pending, sent, acknowledged, completed, failed, expired, timed_out, cancelled")
	}
	var before int64
	if cursor != "" {
		id, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || id <= 0 {
			return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid request", "Parameter 'cursor' is not a cursor of this list")
		}
		before = id
	}
	cs, err := s.store.ListCommands(ctx, iotflow.CommandFilter{DeviceID: deviceID, Status: status, Before: before, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	page := &CommandPage{Commands: cs}
	if len(cs) > limit {
		page.Commands, page.HasMore = cs[:limit], true
		page.NextCursor = strconv.FormatInt(cs[limit-1].ID, 10)
	}
	return page, nil
}

func validState(s string) bool {
	for _, st := range iotflow.CommandStates {
		if s == st {
			return true
		}
	}
	return false
}

// Cancel ends a command that has not ended; ECONFLICT when it has.
func (s *Service) Cancel(ctx context.Context, id int64) (*iotflow.Command, error) {
	before, err := s.store.Command(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := s.store.CancelCommand(ctx, id, iotflow.Truncate(s.now()))
	if err != nil {
		return c, err
	}
	s.ended(ctx, before.Status, c)
	return c, nil
}

// ended tells of a command that changed from state was: its waiters, and
// its device's when it was waiting to be taken.
func (s *Service) ended(ctx context.Context, was string, c *iotflow.Command) {
	if was == iotflow.CommandPending {
		s.notify(ctx, commandTopic(c.ID), deviceTopic(c.DeviceID))
	} else {
		s.notify(ctx, commandTopic(c.ID))
	}
}

// Take hands the device its pending commands, oldest first, marking them
// sent. With nothing pending it waits up to wait for one, on whichever
// node it is issued, and returns an empty list when none came. A device
// that went away before the look takes nothing.
func (s *Service) Take(ctx context.Context, deviceID int64, wait time.Duration) ([]*iotflow.Command, error) {
	taken := []*iotflow.Command{}
	err := s.wait(ctx, deviceTopic(deviceID), min(wait, MaxWait), func() (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		cs, err := s.store.TakeCommands(ctx, deviceID, iotflow.Truncate(s.now()), MaxTake)
		if err != nil || len(cs) == 0 {
			return false, err
		}
		taken = cs
		return true, nil
	})
	if len(taken) > 0 {
		topics := []string{deviceTopic(deviceID)}
		for _, c := range taken {
			topics = append(topics, commandTopic(c.ID))
		}
		s.notify(ctx, topics...)
		return taken, nil // taken and committed: the device gets them
	}
	return taken, err
}

// Answer records a device's answer to one of its commands.
func (s *Service) Answer(ctx context.Context, deviceID, id int64, a iotflow.CommandAnswer) (*iotflow.Command, error) {
	result, err := iotflow.ValidateResult(a.Result)
	if err != nil {
		return nil, err
	}
	a.Result, a.At = result, iotflow.Truncate(s.now())
	before, err := s.DeviceCommand(ctx, deviceID, id)
	if err != nil {
		return nil, err
	}
	c, err := s.store.AnswerCommand(ctx, deviceID, id, a)
	if err != nil {
		return c, err
	}
	if c.Status != before.Status || !sameTime(c.AcknowledgedAt, before.AcknowledgedAt) {
		s.ended(ctx, before.Status, c)
	}
	return c, nil
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// WaitEnd returns the command once it has ended, or as it is when wait
// passes first: a request-response call.
func (s *Service) WaitEnd(ctx context.Context, c *iotflow.Command, wait time.Duration) (*iotflow.Command, error) {
	last := c
	err := s.wait(ctx, commandTopic(c.ID), min(wait, MaxWait), func() (bool, error) {
		got, err := s.store.Command(ctx, c.ID)
		if err != nil {
			return false, err
		}
		last = got
		return iotflow.CommandEnded(got.Status), nil
	})
	if err != nil && ctx.Err() == nil {
		return nil, err
	}
	return last, nil
}

// Sweep expires the commands whose time to live passed and times out
// those not answered in time, and tells their waiters.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	ended, err := s.store.SweepCommands(ctx, iotflow.Truncate(s.now()))
	for _, c := range ended {
		was := iotflow.CommandSent
		if c.SentAt == nil {
			was = iotflow.CommandPending
		}
		s.ended(ctx, was, c)
	}
	return len(ended), err
}

// RunSweeper sweeps every interval until ctx ends. Every node runs one:
// the store ends each command once however many sweep.
func (s *Service) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				s.log.Warn("command sweep failed; retrying", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Counts returns how many commands are in each state, every state named.
func (s *Service) Counts(ctx context.Context) (map[string]int64, error) {
	got, err := s.store.CommandCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(iotflow.CommandStates))
	for _, st := range iotflow.CommandStates {
		out[st] = got[st]
	}
	return out, nil
}
