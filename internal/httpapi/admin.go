package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/series"
)

// paging reads page and per_page, capping per_page at max.
func paging(r *http.Request, defPerPage, maxPerPage int) (page, perPage int, err error) {
	if page, err = queryInt(r, "page", 1, 1); err != nil {
		return 0, 0, err
	}
	if perPage, err = queryInt(r, "per_page", defPerPage, 1); err != nil {
		return 0, 0, err
	}
	if page > math.MaxInt32 {
		return 0, 0, invalid("Query parameter 'page' is too large")
	}
	return page, min(perPage, maxPerPage), nil
}

func (s *server) listDevices(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	page, perPage, err := paging(r, 50, 100)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := iotflow.DeviceFilter{Limit: perPage, Offset: (page - 1) * perPage}
	for _, q := range []struct {
		dst  *string
		name string
	}{{&f.Status, "status"}, {&f.DeviceType, "type"}, {&f.Search, "search"}} {
		if *q.dst, err = queryText(r, q.name); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if f.Status != "" && !iotflow.ValidStatus(f.Status) {
		s.writeError(w, r, invalid("Query parameter 'status' must be one of active, inactive, maintenance"))
		return
	}
	views, total, err := s.Service.ListDevices(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	devices := make([]deviceSummaryJSON, len(views))
	for i, v := range views {
		devices[i] = deviceSummary(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":     "success",
		"devices":    devices,
		"pagination": pagination(page, perPage, total),
	})
}

func (s *server) getDevice(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	det, err := s.Service.Device(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type statistics struct {
		Total    int64   `json:"total_telemetry_records"`
		Latest   *string `json:"latest_telemetry"`
		First    *string `json:"first_telemetry"`
		IsOnline bool    `json:"is_online"`
	}
	type detail struct {
		deviceSummaryJSON
		Statistics statistics      `json:"statistics"`
		Recent     []telemetryJSON `json:"recent_telemetry"`
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "success",
		"device": detail{
			deviceSummaryJSON: deviceSummary(det.DeviceView),
			Statistics: statistics{Total: det.Stats.Count, Latest: formatTimePtr(det.Stats.Latest),
				First: formatTimePtr(det.Stats.First), IsOnline: det.IsOnline},
			Recent: telemetryViews(det.Recent),
		},
	})
}

// adminUpdateRequest is the body of PUT /api/v1/admin/devices/{id}.
type adminUpdateRequest struct {
	Name            *string `json:"name"`
	Description     *string `json:"description"`
	Status          *string `json:"status"`
	Location        *string `json:"location"`
	FirmwareVersion *string `json:"firmware_version"`
	HardwareVersion *string `json:"hardware_version"`
}

func (s *server) updateDevice(w http.ResponseWriter, r *http.Request, who *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req adminUpdateRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := iotflow.DeviceUpdate(req)
	if u.Empty() {
		s.writeError(w, r, invalid("Send at least one of name, description, status, location, firmware_version, hardware_version"))
		return
	}
	d, err := s.Service.UpdateDevice(r.Context(), who, id, u)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "Device updated successfully", "device": deviceView(d)})
}

func (s *server) deleteDevice(w http.ResponseWriter, r *http.Request, who *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.Service.DeleteDevice(r.Context(), who, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "Device " + d.Name + " deleted successfully"})
}

func (s *server) dashboard(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	st, err := s.Service.Dashboard(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type typeCount struct {
		Type  string `json:"type"`
		Count int64  `json:"count"`
	}
	types := make([]typeCount, len(st.DeviceTypes))
	for i, t := range st.DeviceTypes {
		types[i] = typeCount{t.Type, t.Count}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "success",
		"statistics": map[string]any{
			"devices": map[string]int64{
				"total": st.TotalDevices, "active": st.ActiveDevices,
				"inactive": st.InactiveDevices, "maintenance": st.MaintenanceDevices, "online": st.OnlineDevices,
			},
			"telemetry":    map[string]int64{"total_records": st.TotalReadings, "last_24h": st.RecentReadings},
			"device_types": types,
		},
	})
}

func (s *server) listTelemetry(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	page, perPage, err := paging(r, 100, 500)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := r.URL.Query()
	q := series.ReadingsQuery{Limit: perPage, Offset: (page - 1) * perPage, Cursor: v.Get("cursor")}
	if q.DataType, err = queryText(r, "type"); err != nil {
		s.writeError(w, r, err)
		return
	}
	if d := v.Get("device_id"); d != "" {
		if q.DeviceID, err = strconv.ParseInt(d, 10, 64); err != nil || q.DeviceID < 1 {
			s.writeError(w, r, invalid("Query parameter 'device_id' must be a positive integer"))
			return
		}
	}
	if q.Range, err = series.ParseRange(v); err != nil {
		s.writeError(w, r, err)
		return
	}
	if q.Cursor != "" && page > 1 {
		s.writeError(w, r, invalid("Query parameter 'page' cannot be used with 'cursor'"))
		return
	}
	if h := v.Get("hours"); h != "" {
		hours, err := strconv.ParseFloat(h, 64)
		if err != nil || hours <= 0 || hours > 24*366*100 || math.IsNaN(hours) {
			s.writeError(w, r, invalid("Query parameter 'hours' must be a positive number"))
			return
		}
		if q.Start != nil {
			s.writeError(w, r, invalid("Give query parameter 'hours' or 'start', not both"))
			return
		}
		since := iotflow.Truncate(s.Service.Now().Add(-time.Duration(hours * float64(time.Hour))))
		q.Start, q.Window = &since, "hours="+h
	}
	p, err := s.Series.Readings(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	total, err := s.Service.Store().CountReadings(r.Context(),
		iotflow.ReadingFilter{DeviceID: q.DeviceID, DataType: q.DataType, Start: q.Start, End: q.End})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type withName struct {
		telemetryJSON
		DeviceName string `json:"device_name"`
	}
	out := make([]withName, len(p.Readings))
	for i, rd := range p.Readings {
		out[i] = withName{telemetryView(rd), rd.DeviceName}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":      "success",
		"telemetry":   out,
		"pagination":  pagination(page, perPage, total),
		"has_more":    p.HasMore,
		"next_cursor": nullable(p.NextCursor),
	})
}

// metrics serves the Prometheus metrics to an admin.
func (s *server) metrics(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	s.Metrics.Handler().ServeHTTP(w, r)
}
