package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAdminRequiresToken(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	id, _ := a.register("Guarded", "sensor")
	routes := []string{"GET /api/v1/admin/devices", fmt.Sprintf("GET /api/v1/admin/devices/%d", id),
		fmt.Sprintf("PUT /api/v1/admin/devices/%d", id), fmt.Sprintf("DELETE /api/v1/admin/devices/%d", id),
		"GET /api/v1/admin/dashboard", "GET /api/v1/admin/telemetry"}
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		var body any
		if method == "PUT" {
			body = map[string]string{"status": "inactive"}
		}
		a.req(method, path, body).wantError(t, http.StatusUnauthorized, "Admin token required")
		a.req(method, path, body, "Authorization", "Bearer wrong-token-000000000000").wantError(t, http.StatusUnauthorized, "Invalid admin token")
		a.req(method, path, body, "Authorization", "Basic "+adminToken).wantError(t, http.StatusUnauthorized, "")
		a.req(method, path, body, "Authorization", "Bearer "+adminToken+"x").wantError(t, http.StatusUnauthorized, "")
	}
	// Nothing was changed by the refused calls.
	if d, err := a.store.Device(t.Context(), id); err != nil || d.Status != "active" {
		t.Fatalf("refused admin calls changed the device: %+v %v", d, err)
	}

	// A minted token works, a static one too, each case-insensitive in its scheme.
	secret, _, err := a.svc.CreateAdminToken(t.Context(), "ops")
	if err != nil {
		t.Fatal(err)
	}
	a.req("GET", "/api/v1/admin/dashboard", nil, "Authorization", "Bearer "+secret).want(t, http.StatusOK)
	a.req("GET", "/api/v1/admin/dashboard", nil, "Authorization", "bearer "+adminToken).want(t, http.StatusOK)
}

func TestAdminDevices(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		ids := map[string]int64{}
		keys := map[string]string{}
		for _, d := range []struct{ name, typ string }{
			{"Garden Sensor", "sensor"}, {"Garage Door", "actuator"}, {"Porch Camera", "camera"}, {"Attic Sensor", "sensor"},
		} {
			ids[d.name], keys[d.name] = a.register(d.name, d.typ)
		}
		a.device("POST", "/api/v1/devices/telemetry", keys["Garden Sensor"], map[string]any{"data": map[string]int{"t": 1}}).want(t, http.StatusCreated)
		a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", ids["Porch Camera"]), map[string]string{"status": "inactive"}).want(t, http.StatusOK)

		r := a.admin("GET", "/api/v1/admin/devices", nil).want(t, http.StatusOK)
		wantKeys(t, r.body, "status", "devices", "pagination")
		devs := r.list(t, "devices")
		if len(devs) != 4 || devs[0].(map[string]any)["name"] != "Attic Sensor" {
			t.Fatalf("list (newest first) %s", r.raw)
		}
		wantKeys(t, devs[0].(map[string]any), withKeys(deviceKeys, "telemetry_count", "is_online")...)
		p := r.obj(t, "pagination")
		wantKeys(t, p, "page", "per_page", "total", "pages", "has_next", "has_prev")
		if p["total"] != float64(4) || p["pages"] != float64(1) || p["per_page"] != float64(50) || p["has_next"] != false {
			t.Errorf("pagination %v", p)
		}
		for _, d := range devs {
			d := d.(map[string]any)
			if d["name"] == "Garden Sensor" && (d["telemetry_count"] != float64(1) || d["is_online"] != true) {
				t.Errorf("Garden Sensor %v", d)
			}
		}

		names := func(q string) string {
			r := a.admin("GET", "/api/v1/admin/devices?"+q, nil).want(t, http.StatusOK)
			var out []string
			for _, d := range r.list(t, "devices") {
				out = append(out, d.(map[string]any)["name"].(string))
			}
			return strings.Join(out, ",")
		}
		for q, want := range map[string]string{
			"type=sensor":     "Attic Sensor,Garden Sensor",
			"status=inactive": "Porch Camera",
			"search=GAR":      "Garage Door,Garden Sensor",
			"search=sensor&type=sensor&status=active": "Attic Sensor,Garden Sensor",
			"search=nothing":    "",
			"per_page=2&page=2": "Garage Door,Garden Sensor",
			"per_page=2&page=3": "",
		} {
			if got := names(q); got != want {
				t.Errorf("%s: got %q, want %q", q, got, want)
			}
		}
		p = a.admin("GET", "/api/v1/admin/devices?per_page=2&page=2", nil).obj(t, "pagination")
		if p["pages"] != float64(2) || p["has_prev"] != true || p["has_next"] != false {
			t.Errorf("page 2 pagination %v", p)
		}
		if p := a.admin("GET", "/api/v1/admin/devices?per_page=1000", nil).obj(t, "pagination"); p["per_page"] != float64(100) {
			t.Errorf("per_page not capped: %v", p["per_page"])
		}
		for _, q := range []string{"page=0", "page=x", "per_page=0", "per_page=-3", "status=broken"} {
			a.admin("GET", "/api/v1/admin/devices?"+q, nil).wantError(t, http.StatusBadRequest, "")
		}
	})
}

func TestAdminDeviceDetailUpdateDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("Detail Device", "sensor")
		otherID, otherKey := a.register("Bystander", "sensor")
		for i := range 12 {
			a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"i": i}}).want(t, http.StatusCreated)
		}
		a.device("POST", "/api/v1/devices/telemetry", otherKey, map[string]any{"data": map[string]int{"i": 99}}).want(t, http.StatusCreated)

		path := fmt.Sprintf("/api/v1/admin/devices/%d", id)
		r := a.admin("GET", path, nil).want(t, http.StatusOK)
		d := r.obj(t, "device")
		wantKeys(t, d, withKeys(deviceKeys, "telemetry_count", "is_online", "statistics", "recent_telemetry")...)
		st := d["statistics"].(map[string]any)
		wantKeys(t, st, "total_telemetry_records", "latest_telemetry", "first_telemetry", "is_online")
		if st["total_telemetry_records"] != float64(12) || st["is_online"] != true {
			t.Errorf("statistics %v", st)
		}
		if !wantTime(t, st["first_telemetry"]).Before(wantTime(t, st["latest_telemetry"])) {
			t.Errorf("first is not before latest: %v", st)
		}
		recent := d["recent_telemetry"].([]any)
		if len(recent) != 10 || recent[0].(map[string]any)["payload"].(map[string]any)["i"] != float64(11) {
			t.Errorf("recent_telemetry %v", recent)
		}

		a.admin("GET", "/api/v1/admin/devices/999999", nil).wantError(t, http.StatusNotFound, "")
		a.admin("GET", "/api/v1/admin/devices/abc", nil).wantError(t, http.StatusBadRequest, "")
		a.admin("GET", "/api/v1/admin/devices/-1", nil).wantError(t, http.StatusBadRequest, "")

		// Update.
		before := wantTime(t, d["updated_at"])
		r = a.admin("PUT", path, map[string]string{"name": "Renamed", "description": "desc", "location": "Attic",
			"firmware_version": "9", "hardware_version": "h", "status": "maintenance"}).want(t, http.StatusOK)
		if r.body["message"] != "Device updated successfully" {
			t.Errorf("message %v", r.body["message"])
		}
		u := r.obj(t, "device")
		wantKeys(t, u, deviceKeys...)
		if u["name"] != "Renamed" || u["status"] != "maintenance" || u["location"] != "Attic" || u["description"] != "desc" {
			t.Errorf("updated %v", u)
		}
		if !wantTime(t, u["updated_at"]).After(before) && !wantTime(t, u["updated_at"]).Equal(before) {
			t.Errorf("updated_at went backwards")
		}
		a.admin("PUT", path, map[string]string{"name": "Bystander"}).wantError(t, http.StatusConflict, "")
		a.admin("PUT", path, map[string]string{"status": "on fire"}).wantError(t, http.StatusBadRequest, "status")
		a.admin("PUT", path, map[string]string{"name": " "}).wantError(t, http.StatusBadRequest, "name")
		a.admin("PUT", path, map[string]string{"location": strings.Repeat("x", 201)}).wantError(t, http.StatusBadRequest, "location")
		a.admin("PUT", path, map[string]string{}).wantError(t, http.StatusBadRequest, "")
		a.admin("PUT", path, `{"name":`).wantError(t, http.StatusBadRequest, "")
		a.admin("PUT", "/api/v1/admin/devices/999999", map[string]string{"status": "active"}).wantError(t, http.StatusNotFound, "")

		// Delete removes the device, its key and its telemetry, nothing else.
		r = a.admin("DELETE", path, nil).want(t, http.StatusOK)
		if r.body["message"] != "Device Renamed deleted successfully" {
			t.Errorf("message %v", r.body["message"])
		}
		a.admin("GET", path, nil).wantError(t, http.StatusNotFound, "")
		a.admin("DELETE", path, nil).wantError(t, http.StatusNotFound, "")
		a.device("GET", "/api/v1/devices/status", key, nil).wantError(t, http.StatusUnauthorized, "")
		tr := a.admin("GET", "/api/v1/admin/telemetry", nil).want(t, http.StatusOK)
		if l := tr.list(t, "telemetry"); len(l) != 1 || l[0].(map[string]any)["device_id"] != float64(otherID) {
			t.Errorf("telemetry after delete %s", tr.raw)
		}
	})
}

func TestAdminDashboard(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		_, k1 := a.register("S1", "sensor")
		a.register("S2", "sensor")
		id3, _ := a.register("A1", "actuator")
		id4, _ := a.register("C1", "camera")
		a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id3), map[string]string{"status": "inactive"}).want(t, http.StatusOK)
		a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id4), map[string]string{"status": "maintenance"}).want(t, http.StatusOK)
		for range 3 {
			a.device("POST", "/api/v1/devices/telemetry", k1, map[string]any{"data": map[string]int{"t": 1}}).want(t, http.StatusCreated)
		}
		r := a.admin("GET", "/api/v1/admin/dashboard", nil).want(t, http.StatusOK)
		wantKeys(t, r.body, "status", "statistics")
		st := r.obj(t, "statistics")
		wantKeys(t, st, "devices", "telemetry", "device_types")
		devs := st["devices"].(map[string]any)
		wantKeys(t, devs, "total", "active", "inactive", "maintenance", "online")
		if devs["total"] != float64(4) || devs["active"] != float64(2) || devs["inactive"] != float64(1) || devs["maintenance"] != float64(1) ||
			devs["online"] != float64(1) {
			t.Errorf("devices %v", devs)
		}
		tel := st["telemetry"].(map[string]any)
		wantKeys(t, tel, "total_records", "last_24h")
		if tel["total_records"] != float64(3) || tel["last_24h"] != float64(3) {
			t.Errorf("telemetry %v", tel)
		}
		types := st["device_types"].([]any)
		if len(types) != 3 || types[0].(map[string]any)["type"] != "sensor" || types[0].(map[string]any)["count"] != float64(2) {
			t.Errorf("device_types %v", types)
		}
	})
}

func TestAdminTelemetry(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id1, k1 := a.register("T1", "sensor")
		_, k2 := a.register("T2", "sensor")
		for i := range 3 {
			a.device("POST", "/api/v1/devices/telemetry", k1, map[string]any{"data": map[string]int{"i": i}}).want(t, http.StatusCreated)
		}
		a.device("POST", "/api/v1/devices/telemetry", k2, map[string]any{"data": map[string]int{"i": 9}, "type": "alarm"}).want(t, http.StatusCreated)

		r := a.admin("GET", "/api/v1/admin/telemetry", nil).want(t, http.StatusOK)
		wantKeys(t, r.body, "status", "telemetry", "pagination", "has_more", "next_cursor")
		l := r.list(t, "telemetry")
		if len(l) != 4 || l[0].(map[string]any)["device_name"] != "T2" {
			t.Fatalf("telemetry %s", r.raw)
		}
		wantKeys(t, l[0].(map[string]any), "id", "device_id", "payload", "timestamp", "metadata", "data_type", "received_at", "device_name")
		if p := r.obj(t, "pagination"); p["total"] != float64(4) || p["per_page"] != float64(100) {
			t.Errorf("pagination %v", p)
		}
		count := func(q string) float64 {
			return a.admin("GET", "/api/v1/admin/telemetry?"+q, nil).want(t, http.StatusOK).obj(t, "pagination")["total"].(float64)
		}
		if n := count(fmt.Sprintf("device_id=%d", id1)); n != 3 {
			t.Errorf("device_id filter: %v", n)
		}
		if n := count("type=alarm"); n != 1 {
			t.Errorf("type filter: %v", n)
		}
		if n := count("hours=1"); n != 4 {
			t.Errorf("hours filter: %v", n)
		}
		if n := count(fmt.Sprintf("device_id=%d&type=alarm", id1)); n != 0 {
			t.Errorf("combined filter: %v", n)
		}
		r = a.admin("GET", "/api/v1/admin/telemetry?per_page=1&page=2", nil).want(t, http.StatusOK)
		if p := r.obj(t, "pagination"); p["pages"] != float64(4) || p["has_next"] != true || p["has_prev"] != true {
			t.Errorf("pagination %v", p)
		}
		if p := a.admin("GET", "/api/v1/admin/telemetry?per_page=9999", nil).obj(t, "pagination"); p["per_page"] != float64(500) {
			t.Errorf("per_page not capped: %v", p["per_page"])
		}
		for _, q := range []string{"device_id=x", "device_id=0", "hours=-1", "hours=abc", "hours=NaN", "page=0", "per_page=x"} {
			a.admin("GET", "/api/v1/admin/telemetry?"+q, nil).wantError(t, http.StatusBadRequest, "")
		}
		_ = time.Now
	})
}
