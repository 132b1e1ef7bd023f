package httpapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// contractDownlink drives the commands, the shadow, the typed
// configuration and the reference's control routes, on success and on
// their errors.
func contractDownlink(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	a := contractAPI(t, store, httpapi.Deps{MaxBodyBytes: 4 << 10})
	id, k := c.registerDevice(a, "Downlink Sensor")
	other, k2 := c.registerDevice(a, "Other Sensor")
	c.contractCommands(a, id, other, k, k2)
	c.contractShadow(a, id, k)
	c.contractControl(a, id, other, k, k2)

	// A device that is not active is refused every downlink route.
	c.do(a, exchange{method: "PUT", path: "/api/v1/devices/config", headers: key(k2), want: 200, body: map[string]any{"status": "maintenance"}})
	for _, e := range []exchange{
		{method: "GET", path: "/api/v1/devices/commands"},
		{method: "POST", path: "/api/v1/devices/commands/1/result", body: map[string]any{"status": "acknowledged"}},
		{method: "GET", path: "/api/v1/devices/shadow"},
		{method: "PATCH", path: "/api/v1/devices/shadow/reported", body: map[string]any{"a": 1}},
		{method: "GET", path: "/api/v1/devices/config"},
		{method: "POST", path: "/api/v1/devices/config", body: map[string]any{"config_key": "a", "config_value": "b"}},
		{method: "POST", path: fmt.Sprintf("/api/v1/devices/%d/control", other), body: map[string]any{"command": "x"}},
		{method: "GET", path: fmt.Sprintf("/api/v1/devices/%d/control/pending", other)},
		{method: "GET", path: fmt.Sprintf("/api/v1/devices/%d/control/1/status", other)},
		{method: "POST", path: fmt.Sprintf("/api/v1/devices/%d/control/1/status", other), body: map[string]any{"status": "completed"}},
	} {
		e.headers, e.want = key(k2), 403
		c.do(a, e)
	}
}

func (c *contract) contractCommands(a *api, id, other int64, k, k2 string) {
	t := c.t
	issue := fmt.Sprintf("/api/v1/admin/devices/%d/commands", id)
	reboot := map[string]any{"command": "reboot", "parameters": map[string]any{"delay": 5}, "ttl_seconds": 600, "timeout_seconds": 30}
	r := c.do(a, exchange{method: "POST", path: issue, headers: append([]string{"Idempotency-Key", "reboot-1"}, bearer...), want: 201, validRequest: true, body: reboot})
	cid := int64(r.body["id"].(float64))
	if loc := r.header.Get("Location"); loc != fmt.Sprint("/api/v1/admin/commands/", cid) || r.body["status"] != "pending" {
		t.Errorf("issue: Location %q, body %s", loc, r.raw)
	}
	r = c.do(a, exchange{method: "POST", path: issue, headers: append([]string{"Idempotency-Key", "reboot-1"}, bearer...), want: 201, validRequest: true, body: reboot})
	if r.header.Get("Idempotent-Replayed") != "true" || r.body["id"] != float64(cid) {
		t.Errorf("the same Idempotency-Key: Idempotent-Replayed %q, body %s", r.header.Get("Idempotent-Replayed"), r.raw)
	}
	// A request-response call that nobody answers: pending after a second.
	r = c.do(a, exchange{method: "POST", path: issue + "?wait=1", headers: bearer, want: 201, validRequest: true, body: map[string]any{"command": "ping"}})
	if r.body["status"] != "pending" {
		t.Errorf("an unanswered wait: %s", r.raw)
	}
	for _, body := range []any{
		map[string]any{"parameters": map[string]any{}},
		map[string]any{"command": "x", "ttl_seconds": 0},
		map[string]any{"command": "x", "ttl_seconds": 700000},
		map[string]any{"command": "x", "ttl_seconds": 10, "timeout_seconds": 20},
		map[string]any{"command": "x", "parameters": []int{1}},
		`{"command":`,
	} {
		c.do(a, exchange{method: "POST", path: issue, headers: bearer, want: 400, body: body})
	}
	c.do(a, exchange{method: "POST", path: issue + "?wait=61", headers: bearer, want: 400, body: map[string]any{"command": "x"}})
	c.do(a, exchange{method: "POST", path: issue, headers: bearer, want: 413, body: map[string]any{"command": "x", "parameters": map[string]any{"blob": strings.Repeat("x", 5000)}}})
	c.do(a, exchange{method: "POST", path: "/api/v1/admin/devices/999999/commands", headers: bearer, want: 404, body: map[string]any{"command": "x"}})
	c.do(a, exchange{method: "POST", path: "/api/v1/admin/devices/abc/commands", headers: bearer, want: 400, body: map[string]any{"command": "x"}})
	c.do(a, exchange{method: "POST", path: issue, want: 401, body: map[string]any{"command": "x"}})

	// The list, paged.
	r = c.do(a, exchange{method: "GET", path: issue + "?status=pending&limit=1", headers: bearer, want: 200, validRequest: true})
	next, _ := r.body["next_cursor"].(string)
	if r.body["has_more"] != true || next == "" {
		t.Fatalf("a page of one of two commands: %s", r.raw)
	}
	r = c.do(a, exchange{method: "GET", path: issue + "?status=pending&limit=1&cursor=" + next, headers: bearer, want: 200, validRequest: true})
	if r.body["has_more"] != false || r.body["next_cursor"] != nil || r.body["count"] != float64(1) {
		t.Errorf("the last page: %s", r.raw)
	}
	c.do(a, exchange{method: "GET", path: issue + "?status=lost", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: issue + "?cursor=bogus", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/999999/commands", headers: bearer, want: 404})
	c.do(a, exchange{method: "GET", path: issue, want: 401})

	one := fmt.Sprint("/api/v1/admin/commands/", cid)
	c.do(a, exchange{method: "GET", path: one, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/commands/999999", headers: bearer, want: 404})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/commands/abc", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: one, want: 401})

	// The device takes both, then finds none within a second.
	const take = "/api/v1/devices/commands"
	r = c.do(a, exchange{method: "GET", path: take, headers: key(k), want: 200, validRequest: true})
	if cs, _ := r.body["commands"].([]any); len(cs) != 2 || cs[0].(map[string]any)["status"] != "sent" {
		t.Errorf("take: %s", r.raw)
	}
	r = c.do(a, exchange{method: "GET", path: take + "?wait=1", headers: key(k), want: 200, validRequest: true})
	if cs, _ := r.body["commands"].([]any); len(cs) != 0 {
		t.Errorf("a second take: %s", r.raw)
	}
	c.do(a, exchange{method: "GET", path: take + "?wait=61", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: take + "?wait=x", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: take, want: 401})

	// Its answers.
	result := fmt.Sprintf("/api/v1/devices/commands/%d/result", cid)
	done := map[string]any{"status": "completed", "result": map[string]any{"uptime": 0}}
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 200, validRequest: true, body: done})
	r = c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 200, validRequest: true, body: map[string]any{"status": "acknowledged"}})
	if r.body["status"] != "completed" {
		t.Errorf("a late acknowledgement changed the command: %s", r.raw)
	}
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 200, validRequest: true, body: done})
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 409, body: map[string]any{"status": "failed"}})
	c.do(a, exchange{method: "POST", path: result, headers: key(k2), want: 404, body: done})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/commands/999999/result", headers: key(k), want: 404, body: done})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/commands/abc/result", headers: key(k), want: 400, body: done})
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 400, body: map[string]any{}})
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 400, body: map[string]any{"status": "done"}})
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 400, body: map[string]any{"status": "completed", "result": "fine"}})
	c.do(a, exchange{method: "POST", path: result, headers: key(k), want: 413, body: map[string]any{"status": "completed", "result": map[string]any{"log": strings.Repeat("x", 5000)}}})
	c.do(a, exchange{method: "POST", path: result, want: 401, body: done})

	// Cancelling: one that has not ended, then again.
	c.do(a, exchange{method: "DELETE", path: one, headers: bearer, want: 409})
	r = c.do(a, exchange{method: "POST", path: fmt.Sprintf("/api/v1/admin/devices/%d/commands", other), headers: bearer, want: 201, body: map[string]any{"command": "reset"}})
	cancel := fmt.Sprint("/api/v1/admin/commands/", r.body["id"])
	r = c.do(a, exchange{method: "DELETE", path: cancel, headers: bearer, want: 200, validRequest: true})
	if r.body["status"] != "cancelled" {
		t.Errorf("cancel: %s", r.raw)
	}
	c.do(a, exchange{method: "DELETE", path: cancel, headers: bearer, want: 409})
	c.do(a, exchange{method: "DELETE", path: "/api/v1/admin/commands/999999", headers: bearer, want: 404})
	c.do(a, exchange{method: "DELETE", path: "/api/v1/admin/commands/0", headers: bearer, want: 400})
	c.do(a, exchange{method: "DELETE", path: cancel, want: 401})
}

func (c *contract) contractShadow(a *api, id int64, k string) {
	t := c.t
	admin := fmt.Sprintf("/api/v1/admin/devices/%d/shadow", id)
	r := c.do(a, exchange{method: "GET", path: admin, headers: bearer, want: 200, validRequest: true})
	if r.header.Get("ETag") != `"0"` || r.body["version"] != float64(0) {
		t.Errorf("a new device's shadow: ETag %q, %s", r.header.Get("ETag"), r.raw)
	}
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/999999/shadow", headers: bearer, want: 404})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/abc/shadow", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: admin + "?wait=61", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: admin, want: 401})

	desired := map[string]any{"desired": map[string]any{"interval": 30, "led": map[string]any{"color": "green"}}}
	r = c.do(a, exchange{method: "PATCH", path: admin, headers: append([]string{"If-Match", `"0"`}, bearer...), want: 200, validRequest: true, body: desired})
	if r.header.Get("ETag") != `"1"` || r.body["desired_version"] != float64(1) {
		t.Errorf("patch desired: ETag %q, %s", r.header.Get("ETag"), r.raw)
	}
	c.do(a, exchange{method: "PATCH", path: admin, headers: append([]string{"If-Match", `"0"`}, bearer...), want: 412, body: desired})
	c.do(a, exchange{method: "PATCH", path: admin, headers: bearer, want: 200, validRequest: true, body: map[string]any{"desired": map[string]any{"led": nil}}})
	c.do(a, exchange{method: "PATCH", path: admin, headers: bearer, want: 400, body: map[string]any{"interval": 30}})
	c.do(a, exchange{method: "PATCH", path: admin, headers: bearer, want: 400, body: map[string]any{"desired": 30}})
	many := map[string]any{}
	for i := range 300 {
		many[fmt.Sprint("k", i)] = i
	}
	c.do(a, exchange{method: "PATCH", path: admin, headers: bearer, want: 400, body: map[string]any{"desired": many}})
	c.do(a, exchange{method: "PATCH", path: admin, headers: bearer, want: 413, body: map[string]any{"desired": map[string]any{"blob": strings.Repeat("x", 5000)}}})
	c.do(a, exchange{method: "PATCH", path: "/api/v1/admin/devices/999999/shadow", headers: bearer, want: 404, body: desired})
	c.do(a, exchange{method: "PATCH", path: admin, want: 401, body: desired})

	const mine = "/api/v1/devices/shadow"
	r = c.do(a, exchange{method: "GET", path: mine, headers: key(k), want: 200, validRequest: true})
	etag := r.header.Get("ETag")
	if delta, _ := r.body["delta"].(map[string]any); delta["interval"] != float64(30) || etag != `"2"` {
		t.Errorf("the device's shadow: ETag %q, %s", etag, r.raw)
	}
	c.do(a, exchange{method: "GET", path: mine, headers: append([]string{"If-None-Match", etag}, key(k)...), want: 304, validRequest: true})
	c.do(a, exchange{method: "GET", path: mine + "?wait=1", headers: append([]string{"If-None-Match", etag}, key(k)...), want: 304, validRequest: true})
	c.do(a, exchange{method: "GET", path: admin, headers: append([]string{"If-None-Match", etag}, bearer...), want: 304, validRequest: true})
	c.do(a, exchange{method: "GET", path: mine + "?wait=61", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: mine, want: 401})

	const reported = "/api/v1/devices/shadow/reported"
	r = c.do(a, exchange{method: "PATCH", path: reported, headers: key(k), want: 200, validRequest: true, body: map[string]any{"interval": 30}})
	if delta, _ := r.body["delta"].(map[string]any); len(delta) != 0 || r.body["desired_version"] != float64(2) {
		t.Errorf("after reporting what was desired: %s", r.raw)
	}
	c.do(a, exchange{method: "PATCH", path: reported, headers: key(k), want: 400, body: []int{1}})
	c.do(a, exchange{method: "PATCH", path: reported, headers: key(k), want: 400, body: `{"a": "\ud800"}`})
	c.do(a, exchange{method: "PATCH", path: reported, headers: key(k), want: 413, body: map[string]any{"blob": strings.Repeat("x", 5000)}})
	c.do(a, exchange{method: "PATCH", path: reported, want: 401, body: map[string]any{"interval": 30}})

	// The typed configuration is the desired document.
	const cfg = "/api/v1/devices/config"
	r = c.do(a, exchange{method: "POST", path: cfg, headers: key(k), want: 200, validRequest: true,
		body: map[string]any{"config_key": "sample_rate", "config_value": "10", "data_type": "integer"}})
	if r.body["config_value"] != "10" || r.header.Get("ETag") != `"4"` {
		t.Errorf("set a configuration key: ETag %q, %s", r.header.Get("ETag"), r.raw)
	}
	c.do(a, exchange{method: "POST", path: cfg, headers: key(k), want: 200, validRequest: true, body: map[string]any{"config_key": "name", "config_value": "north"}})
	r = c.do(a, exchange{method: "GET", path: cfg, headers: key(k), want: 200, validRequest: true})
	conf, _ := r.body["configuration"].(map[string]any)
	if rate, _ := conf["sample_rate"].(map[string]any); rate["value"] != float64(10) || rate["data_type"] != "integer" {
		t.Errorf("the configuration: %s", r.raw)
	}
	for _, body := range []any{
		map[string]any{"config_value": "1"},
		map[string]any{"config_key": "a"},
		map[string]any{"config_key": "a", "config_value": "abc", "data_type": "integer"},
		map[string]any{"config_key": "a", "config_value": "1", "data_type": "date"},
	} {
		c.do(a, exchange{method: "POST", path: cfg, headers: key(k), want: 400, body: body})
	}
	c.do(a, exchange{method: "POST", path: cfg, headers: key(k), want: 413, body: map[string]any{"config_key": "a", "config_value": strings.Repeat("x", 5000)}})
	c.do(a, exchange{method: "POST", path: cfg, want: 401, body: map[string]any{"config_key": "a", "config_value": "b"}})
	c.do(a, exchange{method: "GET", path: cfg, want: 401})
}

func (c *contract) contractControl(a *api, id, other int64, k, k2 string) {
	t := c.t
	control := fmt.Sprintf("/api/v1/devices/%d/control", id)
	r := c.do(a, exchange{method: "POST", path: control, headers: key(k), want: 201, validRequest: true,
		body: map[string]any{"command": "led_on", "parameters": map[string]any{"color": "red"}}})
	cid := int64(r.body["id"].(float64))
	c.do(a, exchange{method: "POST", path: control, headers: key(k2), want: 403, body: map[string]any{"command": "led_on"}})
	c.do(a, exchange{method: "POST", path: control, headers: key(k), want: 400, body: map[string]any{"parameters": map[string]any{}}})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/abc/control", headers: key(k), want: 400, body: map[string]any{"command": "x"}})
	c.do(a, exchange{method: "POST", path: control, headers: key(k), want: 413, body: map[string]any{"command": "x", "parameters": map[string]any{"blob": strings.Repeat("x", 5000)}}})
	c.do(a, exchange{method: "POST", path: control, want: 401, body: map[string]any{"command": "x"}})

	pending := control + "/pending"
	r = c.do(a, exchange{method: "GET", path: pending, headers: key(k), want: 200, validRequest: true})
	if !strings.Contains(string(r.raw), fmt.Sprintf(`"id":%d`, cid)) {
		t.Errorf("pending: %s", r.raw)
	}
	c.do(a, exchange{method: "GET", path: pending, headers: key(k2), want: 403})
	c.do(a, exchange{method: "GET", path: "/api/v1/devices/0/control/pending", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: pending, want: 401})

	status := fmt.Sprintf("%s/%d/status", control, cid)
	c.do(a, exchange{method: "GET", path: status, headers: key(k), want: 200, validRequest: true})
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 200, validRequest: true, body: map[string]any{"status": "pending"}})
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 200, validRequest: true, body: map[string]any{"status": "acknowledged"}})
	r = c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 200, validRequest: true, body: map[string]any{"status": "completed", "result": map[string]any{"on": true}}})
	if r.body["status"] != "completed" {
		t.Errorf("control status: %s", r.raw)
	}
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 409, body: map[string]any{"status": "failed"}})
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 409, body: map[string]any{"status": "pending"}})
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 400, body: map[string]any{"status": "lost"}})
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 400, body: map[string]any{}})
	c.do(a, exchange{method: "POST", path: status, headers: key(k), want: 413, body: map[string]any{"status": "completed", "result": map[string]any{"log": strings.Repeat("x", 5000)}}})
	c.do(a, exchange{method: "POST", path: status, headers: key(k2), want: 403, body: map[string]any{"status": "completed"}})
	c.do(a, exchange{method: "POST", path: status, want: 401, body: map[string]any{"status": "completed"}})
	// Another device's command under this device's own path.
	r = c.do(a, exchange{method: "POST", path: fmt.Sprintf("/api/v1/devices/%d/control", other), headers: key(k2), want: 201, body: map[string]any{"command": "x"}})
	theirs := fmt.Sprintf("%s/%v/status", control, r.body["id"])
	c.do(a, exchange{method: "GET", path: theirs, headers: key(k), want: 404})
	c.do(a, exchange{method: "POST", path: theirs, headers: key(k), want: 404, body: map[string]any{"status": "completed"}})
	c.do(a, exchange{method: "GET", path: control + "/abc/status", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: status, headers: key(k2), want: 403})
	c.do(a, exchange{method: "GET", path: status, want: 401})
}
