package httpapi

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/series"
)

// exportWriteWindow is how long each stretch of an export may take to
// reach the client before the connection counts as stalled.
const exportWriteWindow = 30 * time.Second

// export streams readings, oldest first, as NDJSON (a reading a line, as
// the telemetry reads show it, with device_name) or CSV (a column a key of
// the values, after the readings' own fields), in constant memory and
// without a cap on rows. Once the first byte is out the status is sent:
// a failure after it cuts the connection, so that a client never takes a
// truncated export for a whole one.
func (s *server) export(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	v := r.URL.Query()
	format := strings.ToLower(v.Get("format"))
	if format == "" {
		format = "ndjson"
	}
	if format != "ndjson" && format != "csv" {
		s.writeError(w, r, invalid("Query parameter 'format' must be ndjson or csv"))
		return
	}
	q := series.ReadingsQuery{}
	var err error
	if d := v.Get("device_id"); d != "" {
		if q.DeviceID, err = strconv.ParseInt(d, 10, 64); err != nil || q.DeviceID < 1 {
			s.writeError(w, r, invalid("Query parameter 'device_id' must be a positive integer"))
			return
		}
		if _, err := s.Service.Store().Device(r.Context(), q.DeviceID); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if q.DataType, err = queryText(r, "type"); err != nil {
		s.writeError(w, r, err)
		return
	}
	if q.Range, err = series.ParseRange(v); err != nil {
		s.writeError(w, r, err)
		return
	}
	if v.Has("order") || v.Has("cursor") {
		s.writeError(w, r, invalid("An export is oldest first and whole: it takes no 'order' or 'cursor'"))
		return
	}
	q.Ascending = true
	var keys []string
	if format == "csv" {
		if keys, err = s.Series.ExportKeys(r.Context(), q.DeviceID); err != nil {
			s.writeError(w, r, err)
			return
		}
	}

	who := "all"
	if q.DeviceID != 0 {
		who = "device-" + strconv.FormatInt(q.DeviceID, 10)
	}
	name := fmt.Sprintf("iotflow-telemetry-%s-%s.%s", who, s.Service.Now().Format("20060102T150405Z"), format)
	h := w.Header()
	h.Set("Content-Type", map[string]string{"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}[format])
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	buf := bufio.NewWriterSize(w, 64<<10)
	var row func(*iotflow.Reading) error
	var cw *csv.Writer
	if format == "ndjson" {
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		type line struct {
			telemetryJSON
			DeviceName string `json:"device_name"`
		}
		row = func(rd *iotflow.Reading) error { return enc.Encode(line{telemetryView(rd), rd.DeviceName}) }
	} else {
		cw = csv.NewWriter(buf)
		row = csvRows(cw, keys)
	}
	n := 0
	flush := func() error {
		if cw != nil {
			if cw.Flush(); cw.Error() != nil {
				return cw.Error()
			}
		}
		if err := rc.SetWriteDeadline(time.Now().Add(exportWriteWindow)); err != nil && err != http.ErrNotSupported {
			return err
		}
		if err := buf.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	err = s.Series.Each(r.Context(), q, s.RequestTimeout, func(rd *iotflow.Reading) error {
		if err := row(rd); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		s.Logger.WarnContext(r.Context(), "export cut off", "rows", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// csvRows writes the header and returns the writer of a reading's row:
// its fields, then a cell a key, the value's text (a string unquoted,
// empty for null or a key the reading lacks).
func csvRows(cw *csv.Writer, keys []string) func(*iotflow.Reading) error {
	fixed := []string{"id", "device_id", "device_name", "timestamp", "received_at", "data_type"}
	column := make(map[string]int, len(keys))
	for i, k := range keys {
		column[k] = len(fixed) + i
	}
	_ = cw.Write(append(fixed, keys...)) // its error stays in cw
	cells := make([]string, len(fixed)+len(keys))
	return func(rd *iotflow.Reading) error {
		clear(cells)
		cells[0], cells[1], cells[2] = strconv.FormatInt(rd.ID, 10), strconv.FormatInt(rd.DeviceID, 10), rd.DeviceName
		cells[3], cells[4], cells[5] = formatTime(rd.Timestamp), formatTime(rd.ReceivedAt), rd.DataType
		iotflow.ReadingValues(rd.Payload, rd.Metadata, func(v iotflow.Value) {
			i, ok := column[v.Key]
			if !ok {
				return
			}
			switch v.Kind {
			case iotflow.KindString:
				var s string
				if json.Unmarshal(v.JSON, &s) == nil {
					cells[i] = s
				}
			case iotflow.KindNull:
			default:
				cells[i] = string(v.JSON)
			}
		})
		return cw.Write(cells)
	}
}
