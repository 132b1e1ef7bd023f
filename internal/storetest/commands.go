package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func newCommand(deviceID int64, name string, created time.Time) *iotflow.Command {
	return &iotflow.Command{DeviceID: deviceID, Command: name, Parameters: json.RawMessage(`{"delay": 5}`),
		CreatedAt: created, ExpiresAt: created.Add(time.Hour), Timeout: 30 * time.Second}
}

func createCommand(t *testing.T, s iotflow.Store, c *iotflow.Command) *iotflow.Command {
	t.Helper()
	created, err := s.CreateCommand(t.Context(), c)
	ok(t, "CreateCommand", err)
	if !created || c.ID == 0 || c.Status != iotflow.CommandPending {
		t.Fatalf("CreateCommand: created %v, %+v", created, c)
	}
	return c
}

// testCommandLife: commands are stored pending and counted on the device,
// taken oldest first exactly once (sent), answered, listed newest first,
// and an idempotency key returns the command it named.
func testCommandLife(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "commanded")
	other := createSimple(t, s, "other")
	var cs []*iotflow.Command
	for i := range 4 {
		cs = append(cs, createCommand(t, s, newCommand(d.ID, fmt.Sprint("c", i), at(time.Duration(i)*time.Second))))
	}
	createCommand(t, s, newCommand(other.ID, "elsewhere", at(0)))
	if n := getDevice(t, s, d.ID).PendingCommands; n != 4 {
		t.Fatalf("PendingCommands %d, want 4", n)
	}
	got, err := s.Command(ctx, cs[1].ID)
	ok(t, "Command", err)
	if got.Command != "c1" || string(got.Parameters) == "" || !got.ExpiresAt.Equal(cs[1].ExpiresAt) || got.Timeout != 30*time.Second ||
		got.SentAt != nil || got.Result != nil {
		t.Errorf("Command = %+v", got)
	}
	_, err = s.Command(ctx, 999999)
	wantCode(t, "Command(unknown)", err, iotflow.ENOTFOUND)

	// An idempotency key: the same key again is the same command.
	keyed := newCommand(d.ID, "keyed", at(5*time.Second))
	keyed.IdempotencyKey = "reboot-1"
	createCommand(t, s, keyed)
	again := newCommand(d.ID, "keyed again", at(6*time.Second))
	again.IdempotencyKey = "reboot-1"
	created, err := s.CreateCommand(ctx, again)
	ok(t, "CreateCommand(same key)", err)
	if created || again.ID != keyed.ID || again.Command != "keyed" {
		t.Errorf("same key: created %v, %+v; want command %d", created, again, keyed.ID)
	}
	otherKey := newCommand(other.ID, "other's", at(0))
	otherKey.IdempotencyKey = "reboot-1"
	createCommand(t, s, otherKey) // keys are the device's own
	if n := getDevice(t, s, d.ID).PendingCommands; n != 5 {
		t.Fatalf("PendingCommands %d after the keyed commands, want 5", n)
	}
	_, err = s.CreateCommand(ctx, newCommand(d.ID+1000, "nobody", at(0)))
	wantCode(t, "CreateCommand(unknown device)", err, iotflow.ENOTFOUND)

	taken, err := s.TakeCommands(ctx, d.ID, at(10*time.Second), 3)
	ok(t, "TakeCommands", err)
	if len(taken) != 3 || taken[0].ID != cs[0].ID || taken[2].ID != cs[2].ID || taken[0].Status != iotflow.CommandSent ||
		taken[0].SentAt == nil || !taken[0].SentAt.Equal(at(10*time.Second)) {
		t.Fatalf("TakeCommands = %+v", taken)
	}
	rest, err := s.TakeCommands(ctx, d.ID, at(11*time.Second), 10)
	ok(t, "TakeCommands(rest)", err)
	if len(rest) != 2 || rest[0].ID != cs[3].ID {
		t.Fatalf("second take = %+v", rest)
	}
	if n := getDevice(t, s, d.ID).PendingCommands; n != 0 {
		t.Errorf("PendingCommands %d after taking all, want 0", n)
	}

	list, err := s.ListCommands(ctx, iotflow.CommandFilter{DeviceID: d.ID, Limit: 3})
	ok(t, "ListCommands", err)
	if len(list) != 3 || list[0].ID != keyed.ID || list[2].ID != cs[2].ID {
		t.Errorf("ListCommands = %v", list)
	}
	next, err := s.ListCommands(ctx, iotflow.CommandFilter{DeviceID: d.ID, Before: list[2].ID, Limit: 10})
	ok(t, "ListCommands(before)", err)
	if len(next) != 2 || next[0].ID != cs[1].ID {
		t.Errorf("ListCommands(before) = %v", next)
	}
	sent, err := s.ListCommands(ctx, iotflow.CommandFilter{DeviceID: other.ID, Status: iotflow.CommandPending})
	ok(t, "ListCommands(status)", err)
	if len(sent) != 2 {
		t.Errorf("the other device's pending: %v", sent)
	}
}

// testCommandAnswers: an answer may overtake its acknowledgement; the same
// final answer again changes nothing; another after the end conflicts; a
// device may not answer another's command.
func testCommandAnswers(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "answering")
	other := createSimple(t, s, "other")
	c := createCommand(t, s, newCommand(d.ID, "reboot", at(0)))
	answer := func(status, result string, when time.Duration) (*iotflow.Command, error) {
		return s.AnswerCommand(ctx, d.ID, c.ID, iotflow.CommandAnswer{Status: status, Result: json.RawMessage(result), At: at(when)})
	}
	// Completed before it was ever taken or acknowledged.
	done, err := answer(iotflow.CommandCompleted, `{"uptime": 1, "ok": true}`, time.Second)
	ok(t, "AnswerCommand(completed)", err)
	if done.Status != iotflow.CommandCompleted || done.CompletedAt == nil || !iotflow.SameJSON(done.Result, json.RawMessage(`{"ok":true,"uptime":1}`)) {
		t.Fatalf("completed: %+v", done)
	}
	if n := getDevice(t, s, d.ID).PendingCommands; n != 0 {
		t.Errorf("a completed command is still counted pending: %d", n)
	}
	stored, _ := s.Command(ctx, c.ID)
	if stored.Status != iotflow.CommandCompleted || !iotflow.SameJSON(stored.Result, done.Result) {
		t.Errorf("stored %+v", stored)
	}
	// The acknowledgement arrives late: nothing changes.
	late, err := answer(iotflow.CommandAcknowledged, ``, 2*time.Second)
	ok(t, "AnswerCommand(late ack)", err)
	if late.Status != iotflow.CommandCompleted || late.AcknowledgedAt != nil {
		t.Errorf("late ack: %+v", late)
	}
	// The same final answer again, spaced and ordered otherwise.
	if same, err := answer(iotflow.CommandCompleted, `{ "ok": true, "uptime": 1.0 }`, 3*time.Second); err != nil || !same.CompletedAt.Equal(at(time.Second)) {
		t.Errorf("same answer again: %+v, %v", same, err)
	}
	_, err = answer(iotflow.CommandFailed, `{}`, 4*time.Second)
	wantCode(t, "AnswerCommand(another final)", err, iotflow.ECONFLICT)
	_, err = s.AnswerCommand(ctx, other.ID, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted, At: at(0)})
	wantCode(t, "AnswerCommand(another device)", err, iotflow.ENOTFOUND)
	_, err = answer("done", ``, 0)
	wantCode(t, "AnswerCommand(bad status)", err, iotflow.EINVALID)

	// Acknowledged, then failed.
	c2 := createCommand(t, s, newCommand(d.ID, "update", at(0)))
	if _, err := s.TakeCommands(ctx, d.ID, at(time.Second), 10); err != nil {
		t.Fatal(err)
	}
	acked, err := s.AnswerCommand(ctx, d.ID, c2.ID, iotflow.CommandAnswer{Status: iotflow.CommandAcknowledged, At: at(2 * time.Second)})
	ok(t, "AnswerCommand(ack)", err)
	if acked.Status != iotflow.CommandAcknowledged || !acked.AcknowledgedAt.Equal(at(2*time.Second)) {
		t.Errorf("acknowledged %+v", acked)
	}
	failed, err := s.AnswerCommand(ctx, d.ID, c2.ID, iotflow.CommandAnswer{Status: iotflow.CommandFailed, Result: json.RawMessage(`{"error":"disk"}`), At: at(3 * time.Second)})
	ok(t, "AnswerCommand(failed)", err)
	if failed.Status != iotflow.CommandFailed || failed.AcknowledgedAt == nil {
		t.Errorf("failed %+v", failed)
	}

	// Cancelling: what has not ended, once.
	c3 := createCommand(t, s, newCommand(d.ID, "later", at(0)))
	cancelled, err := s.CancelCommand(ctx, c3.ID, at(time.Second))
	ok(t, "CancelCommand", err)
	if cancelled.Status != iotflow.CommandCancelled || getDevice(t, s, d.ID).PendingCommands != 0 {
		t.Errorf("cancelled %+v", cancelled)
	}
	_, err = s.CancelCommand(ctx, c3.ID, at(2*time.Second))
	wantCode(t, "CancelCommand(again)", err, iotflow.ECONFLICT)
	_, err = s.CancelCommand(ctx, 999999, at(0))
	wantCode(t, "CancelCommand(unknown)", err, iotflow.ENOTFOUND)
	if taken, _ := s.TakeCommands(ctx, d.ID, at(3*time.Second), 10); len(taken) != 0 {
		t.Errorf("a cancelled command was taken: %+v", taken)
	}
}

// testCommandSweep: what outlives its time to live expires, what was sent
// and not answered in time times out, each once though sweeps race, and
// an expired command is never taken.
func testCommandSweep(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "swept")
	short := newCommand(d.ID, "short", at(0))
	short.ExpiresAt, short.Timeout = at(time.Minute), 55*time.Second
	createCommand(t, s, short)
	slow := createCommand(t, s, newCommand(d.ID, "slow", at(0)))
	acked := createCommand(t, s, newCommand(d.ID, "acked", at(0)))
	if _, err := s.TakeCommands(ctx, d.ID, at(time.Second), 10); err != nil {
		t.Fatal(err) // takes all three, short included
	}
	// short expires (at 1m, before its 55s timeout); slow times out (sent at 1s, 30s timeout);
	// acked was answered and only expires.
	if _, err := s.AnswerCommand(ctx, d.ID, acked.ID, iotflow.CommandAnswer{Status: iotflow.CommandAcknowledged, At: at(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	pending := newCommand(d.ID, "unseen", at(0))
	pending.ExpiresAt = at(time.Minute)
	createCommand(t, s, pending)

	ended, err := s.SweepCommands(ctx, at(40*time.Second))
	ok(t, "SweepCommands(40s)", err)
	if len(ended) != 1 || ended[0].ID != slow.ID || ended[0].Status != iotflow.CommandTimedOut {
		t.Fatalf("at 40s: %+v; want slow timed out", ended)
	}
	var mu sync.Mutex
	var all []*iotflow.Command
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ended, err := s.SweepCommands(ctx, at(2*time.Hour))
			if err != nil {
				t.Errorf("SweepCommands: %v", err)
			}
			mu.Lock()
			all = append(all, ended...)
			mu.Unlock()
		})
	}
	wg.Wait()
	seen := map[int64]string{}
	for _, c := range all {
		if _, twice := seen[c.ID]; twice {
			t.Errorf("command %d ended twice", c.ID)
		}
		seen[c.ID] = c.Status
	}
	if len(seen) != 3 || seen[short.ID] != iotflow.CommandExpired || seen[acked.ID] != iotflow.CommandExpired || seen[pending.ID] != iotflow.CommandExpired {
		t.Errorf("sweeps ended %v", seen)
	}
	if n := getDevice(t, s, d.ID).PendingCommands; n != 0 {
		t.Errorf("PendingCommands %d after the sweep, want 0", n)
	}
	counts, err := s.CommandCounts(ctx)
	ok(t, "CommandCounts", err)
	if counts[iotflow.CommandExpired] != 3 || counts[iotflow.CommandTimedOut] != 1 {
		t.Errorf("CommandCounts = %v", counts)
	}
	expiring := newCommand(d.ID, "stale", at(0))
	expiring.ExpiresAt = at(time.Minute)
	createCommand(t, s, expiring)
	if taken, _ := s.TakeCommands(ctx, d.ID, at(2*time.Minute), 10); len(taken) != 0 {
		t.Errorf("an expired command was taken: %+v", taken)
	}
}

// testShadowVersions: a shadow is saved only over the version it was read
// at; the device carries its desired version; it goes with its device, as
// do the commands.
func testShadowVersions(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "shadowed")
	sh, err := s.Shadow(ctx, d.ID)
	ok(t, "Shadow(new)", err)
	if sh.Version != 0 || string(sh.Desired) != "{}" || string(sh.Reported) != "{}" || sh.DesiredUpdatedAt != nil {
		t.Fatalf("new shadow %+v", sh)
	}
	sh.Desired, sh.Version, sh.DesiredVersion, sh.DesiredUpdatedAt = json.RawMessage(`{"rate":5}`), 1, 1, ptr(at(time.Second))
	sh.DesiredTimes = json.RawMessage(`{"rate":"2026-01-01T00:00:01Z"}`)
	ok(t, "SaveShadow(1)", s.SaveShadow(ctx, sh, 0))
	wantCode(t, "SaveShadow(stale)", s.SaveShadow(ctx, sh, 0), iotflow.ECONFLICT)
	got, err := s.Shadow(ctx, d.ID)
	ok(t, "Shadow", err)
	if got.Version != 1 || got.DesiredVersion != 1 || !iotflow.SameJSON(got.Desired, json.RawMessage(`{"rate":5}`)) ||
		!got.DesiredUpdatedAt.Equal(at(time.Second)) || got.ReportedUpdatedAt != nil ||
		!iotflow.SameJSON(got.DesiredTimes, sh.DesiredTimes) {
		t.Errorf("saved shadow %+v", got)
	}
	if v := getDevice(t, s, d.ID).ShadowVersion; v != 1 {
		t.Errorf("device ShadowVersion %d, want 1", v)
	}
	got.Reported, got.Version, got.ReportedUpdatedAt = json.RawMessage(`{"rate":5}`), 2, ptr(at(2*time.Second))
	ok(t, "SaveShadow(2)", s.SaveShadow(ctx, got, 1))
	if v := getDevice(t, s, d.ID).ShadowVersion; v != 1 {
		t.Errorf("a reported change moved the desired version to %d", v)
	}
	_, err = s.Shadow(ctx, d.ID+1000)
	wantCode(t, "Shadow(unknown)", err, iotflow.ENOTFOUND)
	wantCode(t, "SaveShadow(unknown)", s.SaveShadow(ctx, &iotflow.Shadow{DeviceID: d.ID + 1000, Desired: []byte("{}"), Reported: []byte("{}"), Version: 1}, 0),
		iotflow.ENOTFOUND)

	c := createCommand(t, s, newCommand(d.ID, "last", at(0)))
	if _, err := s.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Command(ctx, c.ID)
	wantCode(t, "Command(of a deleted device)", err, iotflow.ENOTFOUND)
}

// testShadowConcurrentSaves: of saves racing over one version, exactly
// one wins, whether the shadow exists yet or not.
func testShadowConcurrentSaves(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "raced")
	for _, prev := range []int64{0, 1} {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				sh := &iotflow.Shadow{DeviceID: d.ID, Desired: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Reported: json.RawMessage(`{}`),
					Version: prev + 1, DesiredVersion: prev + 1}
				switch err := s.SaveShadow(ctx, sh, prev); iotflow.ErrorCode(err) {
				case "":
					wins.Add(1)
				case iotflow.ECONFLICT:
				default:
					t.Errorf("SaveShadow: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("over version %d, %d saves won; want 1", prev, wins.Load())
		}
	}
	if got, err := s.Shadow(ctx, d.ID); err != nil || got.Version != 2 {
		t.Errorf("shadow %+v %v", got, err)
	}
}
