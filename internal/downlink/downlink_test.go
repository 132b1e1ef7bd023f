package downlink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/events"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/postgres"
	"github.com/iotflow/iotflow/internal/testdb"
)

func device(t *testing.T, s iotflow.Store, name string) int64 {
	t.Helper()
	now := iotflow.Truncate(time.Now())
	d := &iotflow.Device{Name: name, DeviceType: "sensor", Status: iotflow.StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateDevice(t.Context(), d, &iotflow.APIKey{Prefix: "p", Hash: "h-" + name, Active: true, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func code(err error) string { return iotflow.ErrorCode(err) }

// result is what a long poll returned, and when.
type result struct {
	cs  []*iotflow.Command
	err error
	at  time.Time
}

// poll starts a long poll of the device on svc.
func poll(ctx context.Context, svc *downlink.Service, deviceID int64, wait time.Duration) <-chan result {
	ch := make(chan result, 1)
	go func() {
		cs, err := svc.Take(ctx, deviceID, wait)
		ch <- result{cs, err, time.Now()}
	}()
	return ch
}

// waitFor waits until n long polls wait on svc.
func waitFor(t *testing.T, svc *downlink.Service, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for svc.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long polls waiting, want %d", svc.Waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLongPoll(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			svc := downlink.New(s, downlink.Options{})
			d := device(t, s, "poller")
			other := device(t, s, "other")

			// Nothing there: an empty list after the wait, not an error.
			start := time.Now()
			cs, err := svc.Take(t.Context(), d, 200*time.Millisecond)
			if err != nil || len(cs) != 0 || time.Since(start) < 200*time.Millisecond {
				t.Fatalf("empty poll: %v %v after %v", cs, err, time.Since(start))
			}

			// A command for another device does not answer the poll; one
			// for this device does, at once.
			got := poll(t.Context(), svc, d, 10*time.Second)
			waitFor(t, svc, 1)
			if _, _, err := svc.Issue(t.Context(), other, downlink.CommandInput{Command: "elsewhere"}); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-got:
				t.Fatalf("woken by another device's command: %+v", r)
			case <-time.After(100 * time.Millisecond):
			}
			issued := time.Now()
			c, created, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "reboot", Parameters: json.RawMessage(`{"delay":5}`)})
			if err != nil || !created {
				t.Fatal(err, created)
			}
			r := <-got
			if r.err != nil || len(r.cs) != 1 || r.cs[0].ID != c.ID || r.cs[0].Status != iotflow.CommandSent {
				t.Fatalf("poll: %+v", r)
			}
			if lag := r.at.Sub(issued); lag > time.Second {
				t.Errorf("the poll answered %v after the command", lag)
			}
			if string(r.cs[0].Parameters) != `{"delay":5}` && !iotflow.SameJSON(r.cs[0].Parameters, json.RawMessage(`{"delay":5}`)) {
				t.Errorf("parameters %s", r.cs[0].Parameters)
			}
			// Taken once: the next poll finds nothing.
			if cs, _ := svc.Take(t.Context(), d, 0); len(cs) != 0 {
				t.Errorf("taken twice: %+v", cs)
			}

			// Commands waiting already are answered at once, oldest first.
			var ids []int64
			for i := range 3 {
				c, _, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: fmt.Sprint("c", i)})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID)
			}
			cs, err = svc.Take(t.Context(), d, 10*time.Second)
			if err != nil || len(cs) != 3 || cs[0].ID != ids[0] || cs[2].ID != ids[2] {
				t.Fatalf("waiting commands: %+v %v", cs, err)
			}

			// A poll whose client goes away ends and takes nothing.
			ctx, cancel := context.WithCancel(t.Context())
			got = poll(ctx, svc, d, 10*time.Second)
			waitFor(t, svc, 1)
			cancel()
			if r := <-got; r.err == nil || len(r.cs) != 0 {
				t.Errorf("cancelled poll: %+v", r)
			}

			// Close lets every poll go at once.
			got = poll(t.Context(), svc, d, time.Minute)
			waitFor(t, svc, 1)
			svc.Close()
			select {
			case r := <-got:
				if r.err != nil || len(r.cs) != 0 {
					t.Errorf("poll at close: %+v", r)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("a poll outlived Close")
			}
			if svc.Waiting() != 0 {
				t.Errorf("%d polls still waiting", svc.Waiting())
			}
		})
	}
}

func TestIssueRules(t *testing.T) {
	s := testdb.SQLite(t)
	svc := downlink.New(s, downlink.Options{})
	d := device(t, s, "rules")
	for _, in := range []downlink.CommandInput{
		{},
		{Command: "x", Parameters: json.RawMessage(`[1]`)},
		{Command: "x", TTL: -1},
		{Command: "x", TTL: iotflow.MaxCommandTTL + time.Second},
		{Command: "x", TTL: time.Minute, Timeout: 2 * time.Minute},
		{Command: "x", Timeout: -1},
		{Command: "x", Parameters: json.RawMessage(`{"a":"\u0000"}`)},
		{Command: string(make([]byte, 101))},
	} {
		if _, _, err := svc.Issue(t.Context(), d, in); code(err) != iotflow.EINVALID {
			t.Errorf("Issue(%+v) = %v, want invalid", in, err)
		}
	}
	if _, _, err := svc.Issue(t.Context(), d+100, downlink.CommandInput{Command: "x"}); code(err) != iotflow.ENOTFOUND {
		t.Errorf("unknown device: %v", err)
	}
	c, _, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "x", TTL: 10 * time.Second})
	if err != nil || c.Timeout != 10*time.Second || c.ExpiresAt.Sub(c.CreatedAt) != 10*time.Second || string(c.Parameters) != "{}" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	// The same idempotency key again: the same command, not another.
	first, created, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "once", IdempotencyKey: "k1"})
	if err != nil || !created {
		t.Fatal(err)
	}
	again, created, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "once", IdempotencyKey: "k1"})
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("replay: %+v created=%v %v", again, created, err)
	}
	page, err := svc.ListCommands(t.Context(), d, "", "", 10)
	if err != nil || len(page.Commands) != 2 {
		t.Fatalf("list: %+v %v", page, err)
	}
	if _, err := svc.ListCommands(t.Context(), d, "bogus", "", 10); code(err) != iotflow.EINVALID {
		t.Errorf("bad status filter: %v", err)
	}
	if _, err := svc.ListCommands(t.Context(), d, "", "x", 10); code(err) != iotflow.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestListPages(t *testing.T) {
	s := testdb.SQLite(t)
	svc := downlink.New(s, downlink.Options{})
	d := device(t, s, "pages")
	var ids []int64
	for i := range 7 {
		c, _, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	var seen []int64
	cursor := ""
	for range 10 {
		page, err := svc.ListCommands(t.Context(), d, "", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Commands {
			seen = append(seen, c.ID)
		}
		if !page.HasMore {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 7 || seen[0] != ids[6] || seen[6] != ids[0] {
		t.Errorf("pages gave %v, want %v newest first", seen, ids)
	}
	pending, _ := svc.ListCommands(t.Context(), d, iotflow.CommandPending, "", 100)
	svc.Take(t.Context(), d, 0)
	sent, _ := svc.ListCommands(t.Context(), d, iotflow.CommandSent, "", 100)
	none, _ := svc.ListCommands(t.Context(), d, iotflow.CommandPending, "", 100)
	if len(pending.Commands) != 7 || len(sent.Commands) != 7 || len(none.Commands) != 0 {
		t.Errorf("by status: %d pending, then %d sent and %d pending", len(pending.Commands), len(sent.Commands), len(none.Commands))
	}
}

// TestAnswersAndWaitEnd: an operator waiting on a command learns its end
// as the device answers; an answer overtaking the delivery is taken; a
// device cannot see or answer another's command.
func TestAnswersAndWaitEnd(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			svc := downlink.New(s, downlink.Options{})
			d := device(t, s, "answering")
			other := device(t, s, "intruder")
			c, _, err := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "measure"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.DeviceCommand(t.Context(), other, c.ID); code(err) != iotflow.ENOTFOUND {
				t.Errorf("another device sees the command: %v", err)
			}
			if _, err := svc.Answer(t.Context(), other, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted}); code(err) != iotflow.ENOTFOUND {
				t.Errorf("another device answers the command: %v", err)
			}
			ended := make(chan *iotflow.Command, 1)
			go func() {
				got, err := svc.WaitEnd(t.Context(), c, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				ended <- got
			}()
			waitFor(t, svc, 1)
			// Acknowledged is not the end; the wait goes on.
			if _, err := svc.Take(t.Context(), d, 0); err != nil {
				t.Fatal(err)
			}
			if got, err := svc.Answer(t.Context(), d, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandAcknowledged}); err != nil || got.Status != iotflow.CommandAcknowledged {
				t.Fatalf("ack: %+v %v", got, err)
			}
			select {
			case got := <-ended:
				t.Fatalf("the wait ended at %s", got.Status)
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := svc.Answer(t.Context(), d, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted, Result: json.RawMessage(`{"v":1}`)}); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-ended:
				if got.Status != iotflow.CommandCompleted || !iotflow.SameJSON(got.Result, json.RawMessage(`{"v":1}`)) {
					t.Errorf("the wait ended with %+v", got)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the wait did not see the end")
			}
			// A late acknowledgement and the same answer change nothing;
			// another answer is a conflict; a result must be an object.
			if _, err := svc.Answer(t.Context(), d, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandAcknowledged}); err != nil {
				t.Errorf("late ack: %v", err)
			}
			if _, err := svc.Answer(t.Context(), d, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted, Result: json.RawMessage(`{"v": 1}`)}); err != nil {
				t.Errorf("same answer: %v", err)
			}
			if _, err := svc.Answer(t.Context(), d, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandFailed}); code(err) != iotflow.ECONFLICT {
				t.Errorf("other answer: %v", err)
			}
			if _, err := svc.Answer(t.Context(), d, c.ID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted, Result: json.RawMessage(`"x"`)}); code(err) != iotflow.EINVALID {
				t.Errorf("result not an object: %v", err)
			}

			// The answer that overtakes the delivery: the command was never
			// taken, and its count on the device goes down with it.
			c2, _, _ := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "fast"})
			if got, err := svc.Answer(t.Context(), d, c2.ID, iotflow.CommandAnswer{Status: iotflow.CommandFailed}); err != nil || got.Status != iotflow.CommandFailed {
				t.Fatalf("overtaking answer: %+v %v", got, err)
			}
			dev, _ := s.Device(t.Context(), d)
			if dev.PendingCommands != 0 {
				t.Errorf("PendingCommands %d", dev.PendingCommands)
			}
			if cs, _ := svc.Take(t.Context(), d, 0); len(cs) != 0 {
				t.Errorf("an answered command was taken: %+v", cs)
			}

			// Cancel: what has not ended, once.
			c3, _, _ := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "later"})
			if got, err := svc.Cancel(t.Context(), c3.ID); err != nil || got.Status != iotflow.CommandCancelled {
				t.Fatalf("cancel: %+v %v", got, err)
			}
			if _, err := svc.Cancel(t.Context(), c3.ID); code(err) != iotflow.ECONFLICT {
				t.Errorf("cancel again: %v", err)
			}
			if _, err := svc.Cancel(t.Context(), c3.ID+1000); code(err) != iotflow.ENOTFOUND {
				t.Errorf("cancel unknown: %v", err)
			}
		})
	}
}

// TestSweep: the clock of the service decides; an expired command wakes an
// operator waiting on it.
func TestSweep(t *testing.T) {
	s := testdb.SQLite(t)
	var now atomic.Int64
	now.Store(time.Now().UnixMicro())
	svc := downlink.New(s, downlink.Options{Now: func() time.Time { return time.UnixMicro(now.Load()) }})
	d := device(t, s, "swept")
	short, _, _ := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "short", TTL: 10 * time.Second})
	slow, _, _ := svc.Issue(t.Context(), d, downlink.CommandInput{Command: "slow", Timeout: 5 * time.Second})
	svc.Take(t.Context(), d, 0) // both sent
	ended := make(chan *iotflow.Command, 1)
	go func() {
		got, _ := svc.WaitEnd(t.Context(), short, 10*time.Second)
		ended <- got
	}()
	waitFor(t, svc, 1)
	now.Add((6 * time.Second).Microseconds())
	if n, err := svc.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("sweep at 6s: %d %v", n, err)
	}
	if got, _ := svc.Command(t.Context(), slow.ID); got.Status != iotflow.CommandTimedOut {
		t.Errorf("slow is %s", got.Status)
	}
	now.Add((5 * time.Second).Microseconds())
	if n, err := svc.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("sweep at 11s: %d %v", n, err)
	}
	select {
	case got := <-ended:
		if got.Status != iotflow.CommandExpired {
			t.Errorf("the wait saw %s", got.Status)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the expiry did not wake the wait")
	}
	// A device answering a timed-out command is told it has ended.
	if _, err := svc.Answer(t.Context(), d, slow.ID, iotflow.CommandAnswer{Status: iotflow.CommandCompleted}); code(err) != iotflow.ECONFLICT {
		t.Errorf("answer after time-out: %v", err)
	}
	counts, err := svc.Counts(t.Context())
	if err != nil || counts[iotflow.CommandExpired] != 1 || counts[iotflow.CommandTimedOut] != 1 || len(counts) != len(iotflow.CommandStates) {
		t.Errorf("counts %v %v", counts, err)
	}
}

func TestShadow(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			svc := downlink.New(s, downlink.Options{})
			d := device(t, s, "shadowed")
			v, err := svc.Shadow(t.Context(), d)
			if err != nil || v.Version != 0 || string(v.Delta) != "{}" {
				t.Fatalf("new shadow %+v %v", v, err)
			}
			v, err = svc.PatchDesired(t.Context(), d, json.RawMessage(`{"rate":5,"net":{"ssid":"a","pw":"b"},"led":true}`), nil)
			if err != nil || v.Version != 1 || v.DesiredVersion != 1 {
				t.Fatalf("patch: %+v %v", v, err)
			}
			v, err = svc.PatchReported(t.Context(), d, json.RawMessage(`{"rate":5,"net":{"ssid":"a"},"led":false,"uptime":3}`))
			if err != nil || v.Version != 2 || v.DesiredVersion != 1 {
				t.Fatalf("report: %+v %v", v, err)
			}
			if !iotflow.SameJSON(v.Delta, json.RawMessage(`{"net":{"pw":"b"},"led":true}`)) {
				t.Errorf("delta %s", v.Delta)
			}
			// A null removes a key; an If-Match that is not the version
			// changes nothing.
			stale := func(int64) bool { return false }
			if _, err := svc.PatchDesired(t.Context(), d, json.RawMessage(`{"led":null}`), stale); code(err) != iotflow.EPRECONDITION {
				t.Errorf("stale If-Match: %v", err)
			}
			at2 := func(v int64) bool { return v == 2 }
			v, err = svc.PatchDesired(t.Context(), d, json.RawMessage(`{"led":null,"net":{"pw":null}}`), at2)
			if err != nil || v.Version != 3 || !iotflow.SameJSON(v.Desired, json.RawMessage(`{"rate":5,"net":{"ssid":"a"}}`)) ||
				string(v.Delta) != "{}" {
				t.Fatalf("removing patch: %+v %v", v, err)
			}
			for _, bad := range []string{`[1]`, `"x"`, `{"a":` + string(make([]byte, 0)) + `1e999999}`} {
				if _, err := svc.PatchDesired(t.Context(), d, json.RawMessage(bad), nil); code(err) != iotflow.EINVALID {
					t.Errorf("patch %s: %v", bad, err)
				}
			}
			big := fmt.Sprintf(`{"blob":%q}`, string(make([]byte, iotflow.MaxShadowBytes)))
			if _, err := svc.PatchReported(t.Context(), d, json.RawMessage(big)); code(err) != iotflow.EINVALID {
				t.Errorf("a document over 64 KiB: %v", err)
			}
			if _, err := svc.PatchDesired(t.Context(), d+100, json.RawMessage(`{}`), nil); code(err) != iotflow.ENOTFOUND {
				t.Errorf("unknown device: %v", err)
			}

			// Concurrent patches of different keys: none is lost.
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					if _, err := svc.PatchDesired(t.Context(), d, json.RawMessage(fmt.Sprintf(`{"k%d":%d}`, i, i)), nil); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			v, _ = svc.Shadow(t.Context(), d)
			var doc map[string]any
			json.Unmarshal(v.Desired, &doc)
			if len(doc) != 10 || v.Version != 11 {
				t.Errorf("after concurrent patches: version %d, desired %s", v.Version, v.Desired)
			}

			// A wait on the version answers when it changes.
			got := make(chan *downlink.ShadowView, 1)
			go func() {
				v, err := svc.WaitShadow(t.Context(), d, 11, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				got <- v
			}()
			waitFor(t, svc, 1)
			svc.PatchDesired(t.Context(), d, json.RawMessage(`{"rate":6}`), nil)
			select {
			case v := <-got:
				if v.Version != 12 {
					t.Errorf("woke at version %d", v.Version)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("a shadow change did not wake the wait")
			}
		})
	}
}

func TestConfig(t *testing.T) {
	s := testdb.SQLite(t)
	svc := downlink.New(s, downlink.Options{})
	d := device(t, s, "configured")
	for _, c := range []struct{ key, value, dataType, want string }{
		{"name", `"lamp"`, "", `"lamp"`},
		{"interval", `"30"`, "integer", `30`},
		{"count", `7`, "integer", `7`},
		{"gain", `"1.5"`, "float", `1.5`},
		{"whole", `2`, "float", `2.0`},
		{"on", `"yes"`, "boolean", `true`},
		{"off", `false`, "boolean", `false`},
		{"obj", `"{\"a\":1}"`, "json", `{"a":1}`},
		{"arr", `[1,2]`, "json", `[1,2]`},
		{"text", `12`, "string", `"12"`},
	} {
		if _, _, err := svc.SetConfig(t.Context(), d, c.key, json.RawMessage(c.value), c.dataType); err != nil {
			t.Fatalf("SetConfig(%s): %v", c.key, err)
		}
		cfg, err := svc.Config(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		e := cfg[c.key]
		wantType := c.dataType
		if wantType == "" {
			wantType = "string"
		}
		if string(e.Value) != c.want || e.DataType != wantType || e.UpdatedAt == nil {
			t.Errorf("%s = %s (%s, %v), want %s (%s)", c.key, e.Value, e.DataType, e.UpdatedAt, c.want, wantType)
		}
	}
	for _, c := range []struct{ key, value, dataType string }{
		{"", `1`, ""}, {"k", ``, ""}, {"k", `null`, ""}, {"k", `"x"`, "integer"}, {"k", `"NaN"`, "float"},
		{"k", `"maybe"`, "boolean"}, {"k", `"{"`, "json"}, {"k", `1`, "decimal"},
	} {
		if _, _, err := svc.SetConfig(t.Context(), d, c.key, json.RawMessage(c.value), c.dataType); code(err) != iotflow.EINVALID {
			t.Errorf("SetConfig(%q, %s, %q) = %v, want invalid", c.key, c.value, c.dataType, err)
		}
	}
	// Each key keeps the time it was set.
	cfg, _ := svc.Config(t.Context(), d)
	if !cfg["name"].UpdatedAt.Before(*cfg["text"].UpdatedAt) {
		t.Errorf("name set at %v, text at %v", cfg["name"].UpdatedAt, cfg["text"].UpdatedAt)
	}
}

// node is one IoTFlow node's downlink over a shared database.
type node struct {
	svc     *downlink.Service
	changed chan int64
}

func startNode(t *testing.T, s iotflow.Store, c events.Carrier) *node {
	n := events.NewShared(c, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ready := make(chan struct{})
	var once sync.Once
	n.Local.Observe(func(string) {})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	nd := &node{changed: make(chan int64, 100)}
	nd.svc = downlink.New(s, downlink.Options{Notifier: n, Changed: func(id int64) {
		select {
		case nd.changed <- id:
		default:
		}
	}})
	// The carrier listens once a wake-up of its own comes back.
	probe, unsub := n.Subscribe("probe")
	defer unsub()
	go func() {
		for {
			select {
			case <-probe:
				once.Do(func() { close(ready) })
				return
			case <-time.After(20 * time.Millisecond):
				n.Notify(ctx, "probe")
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("the carrier does not listen")
	}
	return nd
}

// testTwoNodes: a command issued on one node answers a long poll waiting
// on the other within a second, a shadow change wakes a shadow wait there,
// and the other node is told the device changed.
func testTwoNodes(t *testing.T, s1, s2 iotflow.Store, c1, c2 events.Carrier) {
	a, b := startNode(t, s1, c1), startNode(t, s2, c2)
	d := device(t, s1, "roaming")
	for i := range 5 {
		got := poll(t.Context(), b.svc, d, 10*time.Second)
		waitFor(t, b.svc, 1)
		issued := time.Now()
		c, _, err := a.svc.Issue(t.Context(), d, downlink.CommandInput{Command: fmt.Sprint("hop", i)})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.err != nil || len(r.cs) != 1 || r.cs[0].ID != c.ID {
				t.Fatalf("poll on the other node: %+v", r)
			}
			if lag := r.at.Sub(issued); lag > time.Second {
				t.Errorf("the other node answered %v after the command", lag)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("a command issued on one node did not wake the poll on the other")
		}
	}
	drain(b.changed)
	got := make(chan *downlink.ShadowView, 1)
	go func() {
		v, _ := b.svc.WaitShadow(t.Context(), d, 0, 10*time.Second)
		got <- v
	}()
	waitFor(t, b.svc, 1)
	if _, err := a.svc.PatchDesired(t.Context(), d, json.RawMessage(`{"rate":1}`), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v == nil || v.Version != 1 {
			t.Errorf("shadow wait on the other node: %+v", v)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a shadow change on one node did not wake the wait on the other")
	}
	select {
	case id := <-b.changed:
		if id != d {
			t.Errorf("the other node was told of device %d", id)
		}
	case <-time.After(3 * time.Second):
		t.Error("the other node was not told that the device changed")
	}
}

func drain(ch chan int64) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestTwoNodesPostgres(t *testing.T) {
	url := testdb.PostgresURL(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s1 := open()
	if _, err := s1.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	s2 := open()
	testTwoNodes(t, s1, s2, s1.Wakeups(), s2.Wakeups())
}

func TestTwoNodesRedis(t *testing.T) {
	url := os.Getenv("IOTFLOW_TEST_REDIS_URL")
	if url == "" {
		t.Skip("IOTFLOW_TEST_REDIS_URL is not set")
	}
	s := testdb.SQLite(t) // one database, however many nodes
	channel := fmt.Sprintf("iotflow-test:%d:wake", time.Now().UnixNano())
	carrier := func() events.Carrier {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opts)
		t.Cleanup(func() { c.Close() })
		return events.Redis{Client: c, Channel: channel}
	}
	testTwoNodes(t, s, s, carrier(), carrier())
}
