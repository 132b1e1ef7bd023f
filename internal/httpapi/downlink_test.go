package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/testdb"
)

func cmdID(t *testing.T, r response) int64 {
	t.Helper()
	id, ok := r.body["id"].(float64)
	if !ok {
		t.Fatalf("no command id in %s", r.raw)
	}
	return int64(id)
}

var commandKeys = []string{"id", "device_id", "command", "parameters", "status", "created_at", "expires_at",
	"timeout_seconds", "sent_at", "acknowledged_at", "completed_at", "result", "updated_at"}

// status sends a request and returns only its status and headers: for
// answers without a body, such as 304.
func (a *api) status(method, path string, headers ...string) (int, http.Header) {
	a.t.Helper()
	r, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		a.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

func TestCommandsHTTP(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, k := a.register("commanded", "sensor")
		path := fmt.Sprintf("/api/v1/admin/devices/%d/commands", id)

		// Issue: the command, stored pending, with its defaults.
		r := a.admin("POST", path, map[string]any{"command": "reboot", "parameters": map[string]any{"delay": 5}}).want(t, 201)
		wantKeys(t, r.body, commandKeys...)
		c1 := cmdID(t, r)
		if r.body["status"] != "pending" || r.body["timeout_seconds"] != 30.0 || r.body["sent_at"] != nil || r.body["result"] != nil {
			t.Errorf("issued %s", r.raw)
		}
		if exp, created := wantTime(t, r.body["expires_at"]), wantTime(t, r.body["created_at"]); exp.Sub(created) != time.Hour {
			t.Errorf("ttl %v, want an hour", exp.Sub(created))
		}
		if loc := r.header.Get("Location"); loc != fmt.Sprintf("/api/v1/admin/commands/%d", c1) {
			t.Errorf("Location %q", loc)
		}
		// Bad input: 400 with a reason; an unknown device 404; no token 401.
		for _, body := range []any{
			map[string]any{}, map[string]any{"command": ""}, map[string]any{"command": 5},
			map[string]any{"command": "x", "parameters": []int{1}}, map[string]any{"command": "x", "ttl_seconds": 0},
			map[string]any{"command": "x", "ttl_seconds": 604801}, map[string]any{"command": "x", "ttl_seconds": 1.5},
			map[string]any{"command": "x", "ttl_seconds": 10, "timeout_seconds": 11},
			map[string]any{"command": "x", "timeout_seconds": -1}, "[]", "{",
		} {
			a.admin("POST", path, body).wantError(t, 400, "")
		}
		a.admin("POST", path+"?wait=61", map[string]any{"command": "x"}).wantError(t, 400, "wait")
		a.admin("POST", "/api/v1/admin/devices/999999/commands", map[string]any{"command": "x"}).wantError(t, 404, "")
		a.req("POST", path, map[string]any{"command": "x"}).want(t, 401)
		a.admin("GET", "/api/v1/admin/devices/999999/commands", nil).wantError(t, 404, "")

		// The same Idempotency-Key: the same command, marked replayed.
		first := a.req("POST", path, map[string]any{"command": "once"}, "Authorization", "Bearer "+adminToken, "Idempotency-Key", "k-1").want(t, 201)
		again := a.req("POST", path, map[string]any{"command": "once"}, "Authorization", "Bearer "+adminToken, "Idempotency-Key", "k-1").want(t, 201)
		if cmdID(t, first) != cmdID(t, again) || again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("replay: %s / %s (%q)", first.raw, again.raw, again.header.Get("Idempotent-Replayed"))
		}

		// A device that only posts learns it has work.
		tel := a.device("POST", "/api/v1/devices/telemetry", k, map[string]any{"data": map[string]any{"t": 1}}).want(t, 201)
		if tel.body["pending_commands"] != 2.0 || tel.body["shadow_version"] != 0.0 {
			t.Errorf("telemetry answer %s", tel.raw)
		}
		hb := a.device("POST", "/api/v1/devices/heartbeat", k, nil).want(t, 200)
		if hb.body["pending_commands"] != 2.0 {
			t.Errorf("heartbeat answer %s", hb.raw)
		}

		// The device takes them, oldest first, now sent; then none is left.
		r = a.device("GET", "/api/v1/devices/commands", k, nil).want(t, 200)
		cs := r.list(t, "commands")
		if len(cs) != 2 || cs[0].(map[string]any)["id"] != float64(c1) || cs[0].(map[string]any)["status"] != "sent" {
			t.Fatalf("taken %s", r.raw)
		}
		if got := a.device("GET", "/api/v1/devices/commands", k, nil).want(t, 200).list(t, "commands"); len(got) != 0 {
			t.Errorf("taken twice: %v", got)
		}
		a.device("GET", "/api/v1/devices/commands?wait=61", k, nil).wantError(t, 400, "wait")
		a.device("GET", "/api/v1/devices/commands?wait=x", k, nil).wantError(t, 400, "wait")
		batch := a.device("POST", "/api/v1/devices/telemetry/batch", k, map[string]any{"records": []any{map[string]any{"data": map[string]any{"t": 2}}}}).want(t, 201)
		if batch.body["pending_commands"] != 0.0 {
			t.Errorf("batch answer %s", batch.raw)
		}

		// Answers: ack, then completed with a result; the same answer is
		// 200 again; another is 409; a bad one 400.
		res := fmt.Sprintf("/api/v1/devices/commands/%d/result", c1)
		a.device("POST", res, k, map[string]any{"status": "acknowledged"}).want(t, 200)
		done := a.device("POST", res, k, map[string]any{"status": "completed", "result": map[string]any{"ok": true}}).want(t, 200)
		if done.body["status"] != "completed" || done.body["acknowledged_at"] == nil || done.obj(t, "result")["ok"] != true {
			t.Errorf("completed %s", done.raw)
		}
		a.device("POST", res, k, map[string]any{"status": "completed", "result": map[string]any{"ok": true}}).want(t, 200)
		a.device("POST", res, k, map[string]any{"status": "failed"}).wantError(t, 409, "ended")
		for _, body := range []any{map[string]any{}, map[string]any{"status": "done"}, map[string]any{"status": "completed", "result": "x"}} {
			a.device("POST", res, k, body).wantError(t, 400, "")
		}
		a.device("POST", "/api/v1/devices/commands/999999/result", k, map[string]any{"status": "completed"}).wantError(t, 404, "")
		a.device("POST", "/api/v1/devices/commands/abc/result", k, map[string]any{"status": "completed"}).wantError(t, 400, "")

		// Reading, listing, cancelling.
		if got := a.admin("GET", fmt.Sprintf("/api/v1/admin/commands/%d", c1), nil).want(t, 200); got.body["status"] != "completed" {
			t.Errorf("get %s", got.raw)
		}
		a.admin("GET", "/api/v1/admin/commands/999999", nil).wantError(t, 404, "")
		a.admin("GET", "/api/v1/admin/commands/0", nil).wantError(t, 400, "")
		c3 := cmdID(t, a.admin("POST", path, map[string]any{"command": "later"}).want(t, 201))
		cancelled := a.admin("DELETE", fmt.Sprintf("/api/v1/admin/commands/%d", c3), nil).want(t, 200)
		if cancelled.body["status"] != "cancelled" || cancelled.body["completed_at"] == nil {
			t.Errorf("cancelled %s", cancelled.raw)
		}
		a.admin("DELETE", fmt.Sprintf("/api/v1/admin/commands/%d", c3), nil).wantError(t, 409, "")
		a.admin("DELETE", fmt.Sprintf("/api/v1/admin/commands/%d", c1), nil).wantError(t, 409, "")
		a.admin("DELETE", "/api/v1/admin/commands/999999", nil).wantError(t, 404, "")

		list := a.admin("GET", path+"?limit=2", nil).want(t, 200)
		wantKeys(t, list.body, "status", "device_id", "commands", "count", "has_more", "next_cursor")
		page := list.list(t, "commands")
		if len(page) != 2 || page[0].(map[string]any)["id"] != float64(c3) || list.body["has_more"] != true {
			t.Fatalf("first page %s", list.raw)
		}
		rest := a.admin("GET", path+"?limit=2&cursor="+list.body["next_cursor"].(string), nil).want(t, 200)
		if n := len(rest.list(t, "commands")); n != 1 || rest.body["has_more"] != false || rest.body["next_cursor"] != nil {
			t.Errorf("second page %s", rest.raw)
		}
		if got := a.admin("GET", path+"?status=cancelled", nil).want(t, 200).list(t, "commands"); len(got) != 1 {
			t.Errorf("cancelled ones: %v", got)
		}
		a.admin("GET", path+"?status=bogus", nil).wantError(t, 400, "status")
		a.admin("GET", path+"?cursor=-4", nil).wantError(t, 400, "cursor")
	})
}

// TestCommandLongPollHTTP: a device's long poll answers as soon as the
// command is issued; an operator's ?wait= as soon as the device answers.
func TestCommandLongPollHTTP(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, k := a.register("waiting", "sensor")
		type polled struct {
			r  response
			at time.Time
		}
		got := make(chan polled, 1)
		go func() {
			r := a.device("GET", "/api/v1/devices/commands?wait=20", k, nil)
			got <- polled{r, time.Now()}
		}()
		time.Sleep(200 * time.Millisecond) // the poll is waiting
		issued := time.Now()
		c := cmdID(t, a.admin("POST", fmt.Sprintf("/api/v1/admin/devices/%d/commands", id), map[string]any{"command": "go"}).want(t, 201))
		p := <-got
		cs := p.r.want(t, 200).list(t, "commands")
		if len(cs) != 1 || cs[0].(map[string]any)["id"] != float64(c) {
			t.Fatalf("poll: %s", p.r.raw)
		}
		if lag := p.at.Sub(issued); lag > time.Second {
			t.Errorf("the poll answered %v after the command", lag)
		}
		// An empty wait ends after its seconds with an empty list.
		start := time.Now()
		if cs := a.device("GET", "/api/v1/devices/commands?wait=1", k, nil).want(t, 200).list(t, "commands"); len(cs) != 0 || time.Since(start) < time.Second {
			t.Errorf("empty poll %v after %v", cs, time.Since(start))
		}

		// Request-response: the operator waits for the device's answer.
		issuedc := make(chan response, 1)
		go func() {
			issuedc <- a.admin("POST", fmt.Sprintf("/api/v1/admin/devices/%d/commands?wait=20", id), map[string]any{"command": "ping"})
		}()
		cs = a.device("GET", "/api/v1/devices/commands?wait=10", k, nil).want(t, 200).list(t, "commands")
		if len(cs) != 1 {
			t.Fatalf("took %v", cs)
		}
		cid := int64(cs[0].(map[string]any)["id"].(float64))
		a.device("POST", fmt.Sprintf("/api/v1/devices/commands/%d/result", cid), k, map[string]any{"status": "completed", "result": map[string]any{"pong": 1}}).want(t, 200)
		select {
		case r := <-issuedc:
			r.want(t, 201)
			if r.body["status"] != "completed" || r.obj(t, "result")["pong"] != 1.0 {
				t.Errorf("request-response answer %s", r.raw)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the waiting POST did not answer with the device's result")
		}
		// Unanswered, it answers after its wait with the command as it is.
		r := a.admin("POST", fmt.Sprintf("/api/v1/admin/devices/%d/commands?wait=1", id), map[string]any{"command": "nobody"}).want(t, 201)
		if r.body["status"] != "pending" {
			t.Errorf("unanswered %s", r.raw)
		}
	})
}

// TestDownlinkIsolation: a device can neither see, answer, cancel nor
// address another device's commands or shadow.
func TestDownlinkIsolation(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		victim, _ := a.register("victim", "sensor")
		_, ik := a.register("intruder", "sensor")
		c := cmdID(t, a.admin("POST", fmt.Sprintf("/api/v1/admin/devices/%d/commands", victim), map[string]any{"command": "secret"}).want(t, 201))
		a.admin("PATCH", fmt.Sprintf("/api/v1/admin/devices/%d/shadow", victim), map[string]any{"desired": map[string]any{"pin": 1234}}).want(t, 200)

		if cs := a.device("GET", "/api/v1/devices/commands", ik, nil).want(t, 200).list(t, "commands"); len(cs) != 0 {
			t.Errorf("the intruder took %v", cs)
		}
		a.device("POST", fmt.Sprintf("/api/v1/devices/commands/%d/result", c), ik, map[string]any{"status": "completed"}).wantError(t, 404, "")
		for _, p := range []struct{ method, path string }{
			{"GET", fmt.Sprintf("/api/v1/devices/%d/control/pending", victim)},
			{"GET", fmt.Sprintf("/api/v1/devices/%d/control/%d/status", victim, c)},
			{"POST", fmt.Sprintf("/api/v1/devices/%d/control/%d/status", victim, c)},
			{"POST", fmt.Sprintf("/api/v1/devices/%d/control", victim)},
		} {
			a.device(p.method, p.path, ik, map[string]any{"status": "completed", "command": "x"}).wantError(t, 403, "Unauthorized")
		}
		// Through its own path, the other device's command is not found.
		intruder := a.device("GET", "/api/v1/devices/status", ik, nil).obj(t, "device")["id"].(float64)
		a.device("GET", fmt.Sprintf("/api/v1/devices/%d/control/%d/status", int64(intruder), c), ik, nil).wantError(t, 404, "")
		a.device("POST", fmt.Sprintf("/api/v1/devices/%d/control/%d/status", int64(intruder), c), ik, map[string]any{"status": "failed"}).wantError(t, 404, "")
		sh := a.device("GET", "/api/v1/devices/shadow", ik, nil).want(t, 200)
		if sh.body["version"] != 0.0 || strings.Contains(sh.raw, "1234") {
			t.Errorf("the intruder's shadow %s", sh.raw)
		}
		if cfg := a.device("GET", "/api/v1/devices/config", ik, nil).want(t, 200).obj(t, "configuration"); len(cfg) != 0 {
			t.Errorf("the intruder's configuration %v", cfg)
		}
		// The victim's command is untouched.
		if got := a.admin("GET", fmt.Sprintf("/api/v1/admin/commands/%d", c), nil).want(t, 200); got.body["status"] != "pending" {
			t.Errorf("the victim's command is %s", got.body["status"])
		}
		// Without a key, nothing.
		a.req("GET", "/api/v1/devices/commands", nil).want(t, 401)
		a.req("GET", "/api/v1/devices/shadow", nil).want(t, 401)
	})
}

func TestShadowHTTP(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, k := a.register("shadowed", "sensor")
		path := fmt.Sprintf("/api/v1/admin/devices/%d/shadow", id)
		r := a.admin("GET", path, nil).want(t, 200)
		wantKeys(t, r.body, "device_id", "desired", "reported", "delta", "version", "desired_version", "desired_updated_at", "reported_updated_at")
		if r.header.Get("ETag") != `"0"` || r.body["version"] != 0.0 {
			t.Errorf("new shadow %s %q", r.raw, r.header.Get("ETag"))
		}
		r = a.admin("PATCH", path, map[string]any{"desired": map[string]any{"rate": 5, "net": map[string]any{"ssid": "a", "pw": "b"}}}).want(t, 200)
		if r.header.Get("ETag") != `"1"` || r.body["version"] != 1.0 || r.obj(t, "delta")["rate"] != 5.0 {
			t.Errorf("patched %s", r.raw)
		}
		// The device sees it, reports, and the delta shrinks.
		if tel := a.device("POST", "/api/v1/devices/telemetry", k, map[string]any{"data": map[string]any{"t": 1}}).want(t, 201); tel.body["shadow_version"] != 1.0 {
			t.Errorf("telemetry answer %s", tel.raw)
		}
		r = a.device("PATCH", "/api/v1/devices/shadow/reported", k, map[string]any{"rate": 5, "net": map[string]any{"ssid": "a"}}).want(t, 200)
		if delta := r.obj(t, "delta"); len(delta) != 1 || delta["net"].(map[string]any)["pw"] != "b" || r.body["version"] != 2.0 || r.body["desired_version"] != 1.0 {
			t.Errorf("reported %s", r.raw)
		}
		// If-None-Match: 304 while it is current, the shadow once it is not.
		if st, h := a.status("GET", "/api/v1/devices/shadow", "X-API-Key", k, "If-None-Match", `"2"`); st != 304 || h.Get("ETag") != `"2"` {
			t.Errorf("If-None-Match current: %d %q", st, h.Get("ETag"))
		}
		a.req("GET", "/api/v1/devices/shadow", nil, "X-API-Key", k, "If-None-Match", `"1"`).want(t, 200)
		// ...and with ?wait=, it answers at the change.
		got := make(chan response, 1)
		go func() {
			got <- a.req("GET", "/api/v1/devices/shadow?wait=20", nil, "X-API-Key", k, "If-None-Match", `"2"`)
		}()
		time.Sleep(200 * time.Millisecond)
		a.admin("PATCH", path, map[string]any{"desired": map[string]any{"rate": 6}}).want(t, 200)
		select {
		case r := <-got:
			if r.want(t, 200).body["version"] != 3.0 {
				t.Errorf("woken shadow %s", r.raw)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the shadow wait did not answer at the change")
		}
		start := time.Now()
		if st, _ := a.status("GET", "/api/v1/devices/shadow?wait=1", "X-API-Key", k, "If-None-Match", `"3"`); st != 304 || time.Since(start) < time.Second {
			t.Errorf("unchanged wait: %d after %v", st, time.Since(start))
		}

		// If-Match: a stale version is 412 and changes nothing.
		a.req("PATCH", path, map[string]any{"desired": map[string]any{"rate": 7}}, "Authorization", "Bearer "+adminToken, "If-Match", `"2"`).wantError(t, 412, "")
		a.req("PATCH", path, map[string]any{"desired": map[string]any{"rate": nil}}, "Authorization", "Bearer "+adminToken, "If-Match", `"3"`).want(t, 200)
		if d := a.admin("GET", path, nil).obj(t, "desired"); d["rate"] != nil || d["net"] == nil {
			t.Errorf("after removing rate: %v", d)
		}
		// Merge patches as their own media type.
		a.req("PATCH", path, `{"desired":{"mode":"eco"}}`, "Authorization", "Bearer "+adminToken, "Content-Type", "application/merge-patch+json").want(t, 200)

		// Bad input: 400; an unknown device 404.
		deep := strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33)
		for _, body := range []string{`{"desired":[1]}`, `{"desired":{}, "reported":{}}`, `{}`, `{"desired":` + deep + `}`} {
			a.admin("PATCH", path, body).wantError(t, 400, "")
		}
		// A body over the limit is 413; a document grown past 64 KiB by
		// patches that each fit is 400.
		a.admin("PATCH", path, fmt.Sprintf(`{"desired":{"blob":%q}}`, strings.Repeat("x", 70<<10))).wantError(t, 413, "")
		a.admin("PATCH", path, fmt.Sprintf(`{"desired":{"blob1":%q}}`, strings.Repeat("x", 40<<10))).want(t, 200)
		a.admin("PATCH", path, fmt.Sprintf(`{"desired":{"blob2":%q}}`, strings.Repeat("x", 40<<10))).wantError(t, 400, "exceed")
		a.admin("PATCH", path, `{"desired":{"blob1":null}}`).want(t, 200)
		a.device("PATCH", "/api/v1/devices/shadow/reported", k, "[1]").wantError(t, 400, "")
		a.device("PATCH", "/api/v1/devices/shadow/reported", k, `{"x":"\u0000"}`).wantError(t, 400, "")
		a.admin("GET", "/api/v1/admin/devices/999999/shadow", nil).wantError(t, 404, "")
		a.admin("PATCH", "/api/v1/admin/devices/999999/shadow", map[string]any{"desired": map[string]any{}}).wantError(t, 404, "")
		a.device("GET", "/api/v1/devices/shadow?wait=99", k, nil).wantError(t, 400, "wait")

		// Concurrent operators without If-Match: every patch applies.
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				a.admin("PATCH", path, map[string]any{"desired": map[string]any{fmt.Sprint("k", i): i}})
			})
		}
		wg.Wait()
		if d := a.admin("GET", path, nil).obj(t, "desired"); len(d) != 8 {
			t.Errorf("after concurrent patches: %v", d)
		}
	})
}

// TestReferenceDownlinkHTTP: the reference's later control and
// configuration endpoints, as its devices and dashboard called them.
func TestReferenceDownlinkHTTP(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, k := a.register("legacy", "sensor")
		base := fmt.Sprintf("/api/v1/devices/%d/control", id)
		r := a.device("POST", base, k, map[string]any{"command": "led_on", "parameters": map[string]any{"color": "red"}}).want(t, 201)
		for _, key := range []string{"id", "device_id", "command", "parameters", "status", "created_at"} {
			if _, ok := r.body[key]; !ok {
				t.Errorf("control answer lacks %q: %s", key, r.raw)
			}
		}
		if r.body["status"] != "pending" || r.obj(t, "parameters")["color"] != "red" {
			t.Errorf("control answer %s", r.raw)
		}
		c := cmdID(t, r)
		a.device("POST", base, k, map[string]any{"parameters": map[string]any{}}).wantError(t, 400, "Command")
		a.device("POST", base, k, "").wantError(t, 400, "")

		pending := func() []any {
			t.Helper()
			res, err := http.NewRequest("GET", a.base+base+"/pending", nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Header.Set("X-API-Key", k)
			resp, err := http.DefaultClient.Do(res)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out []any
			if resp.StatusCode != 200 || decode(resp, &out) != nil {
				t.Fatalf("pending: %d", resp.StatusCode)
			}
			return out
		}
		// Listed until the device sets its status, as the reference did.
		for range 2 {
			if got := pending(); len(got) != 1 || got[0].(map[string]any)["id"] != float64(c) {
				t.Fatalf("pending %v", got)
			}
		}
		status := fmt.Sprintf("%s/%d/status", base, c)
		if got := a.device("GET", status, k, nil).want(t, 200); got.body["status"] != "sent" || got.body["sent_at"] == nil {
			t.Errorf("status %s", got.raw)
		}
		a.device("POST", status, k, map[string]any{"status": "pending"}).want(t, 200)
		a.device("POST", status, k, map[string]any{"status": "acknowledged"}).want(t, 200)
		if got := pending(); len(got) != 0 {
			t.Errorf("pending after acknowledging: %v", got)
		}
		done := a.device("POST", status, k, map[string]any{"status": "completed"}).want(t, 200)
		if done.body["status"] != "completed" {
			t.Errorf("completed %s", done.raw)
		}
		wantTime(t, done.body["updated_at"])
		a.device("POST", status, k, map[string]any{"status": "pending"}).wantError(t, 409, "")
		a.device("POST", status, k, map[string]any{"status": "bogus"}).wantError(t, 400, "status")
		a.device("POST", status, k, map[string]any{}).wantError(t, 400, "Status")
		a.device("GET", fmt.Sprintf("%s/999999/status", base), k, nil).wantError(t, 404, "")
		a.device("GET", "/api/v1/devices/abc/control/pending", k, nil).wantError(t, 400, "")

		// Configuration: typed keys in, typed keys out, from desired.
		set := a.device("POST", "/api/v1/devices/config", k, map[string]any{"config_key": "interval", "config_value": "30", "data_type": "integer"}).want(t, 200)
		wantKeys(t, set.body, "status", "message", "config_key", "config_value", "data_type")
		if set.body["config_value"] != "30" {
			t.Errorf("set %s", set.raw)
		}
		a.device("POST", "/api/v1/devices/config", k, map[string]any{"config_key": "name", "config_value": "lamp"}).want(t, 200)
		cfg := a.device("GET", "/api/v1/devices/config", k, nil).want(t, 200)
		wantKeys(t, cfg.body, "status", "device_id", "configuration")
		entries := cfg.obj(t, "configuration")
		iv := entries["interval"].(map[string]any)
		if iv["value"] != 30.0 || iv["data_type"] != "integer" || entries["name"].(map[string]any)["data_type"] != "string" {
			t.Errorf("configuration %s", cfg.raw)
		}
		wantTime(t, iv["updated_at"])
		if d := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/shadow", id), nil).obj(t, "desired"); d["interval"] != 30.0 {
			t.Errorf("desired %v", d)
		}
		for _, body := range []any{map[string]any{"config_value": 1}, map[string]any{"config_key": "a"},
			map[string]any{"config_key": "a", "config_value": "x", "data_type": "integer"},
			map[string]any{"config_key": "a", "config_value": 1, "data_type": "complex"}} {
			a.device("POST", "/api/v1/devices/config", k, body).wantError(t, 400, "")
		}
		// The seed's PUT is unchanged.
		a.device("PUT", "/api/v1/devices/config", k, map[string]any{"location": "lab"}).want(t, 200)
	})
}

func decode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }

// TestLongPollOutlivesServerTimeouts: the server's read and write timeouts
// (30 s in the service, 1 s here) do not cut off a longer long poll.
func TestLongPollOutlivesServerTimeouts(t *testing.T) {
	store := testdb.SQLite(t)
	svc := fleet.New(store, httpapi.FleetOptions(fleet.Options{StaticAdminToken: adminToken}))
	srv := httptest.NewUnstartedServer(httpapi.NewHandler(httpapi.DepsWithDefaults(httpapi.Deps{Service: svc, Version: "test"})))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = time.Second, time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	a := &api{t: t, base: srv.URL, svc: svc, store: store}
	id, k := a.register("slow", "sensor")
	type polled struct {
		status int
		body   string
		err    error
	}
	got := make(chan polled, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/devices/commands?wait=5", nil)
		req.Header.Set("X-API-Key", k)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- polled{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- polled{res.StatusCode, string(b), err}
	}()
	time.Sleep(2500 * time.Millisecond)
	a.admin("POST", fmt.Sprintf("/api/v1/admin/devices/%d/commands", id), map[string]any{"command": "late"}).want(t, 201)
	select {
	case p := <-got:
		if p.err != nil || p.status != 200 || !strings.Contains(p.body, `"late"`) {
			t.Errorf("the poll got %d %q %v", p.status, p.body, p.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not answer")
	}
}

// TestAbandonedLongPollIsNoServerError: a device that gives up its long
// poll is recorded as 499 (client closed request), not as a 5xx of the
// service.
func TestAbandonedLongPollIsNoServerError(t *testing.T) {
	store := testdb.SQLite(t)
	a := newAPIWith(t, store, httpapi.Deps{Metrics: metrics.New()})
	_, k := a.register("impatient", "sensor")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/api/v1/devices/commands?wait=20", nil)
	req.Header.Set("X-API-Key", k)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the poll answered %d before the client gave up", res.StatusCode)
	}
	route := `route="GET /api/v1/devices/commands",status="`
	deadline := time.Now().Add(5 * time.Second)
	for {
		mreq, _ := http.NewRequest("GET", a.base+"/metrics", nil)
		mreq.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(mreq)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body := string(raw)
		if strings.Contains(body, route+"5") {
			t.Fatalf("an abandoned poll counted as a server error:\n%s", body)
		}
		if strings.Contains(body, route+"499") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned poll is not in the metrics:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
