// Package httpapi serves IoTFlow's HTTP API: the device API, the admin API
// and the health endpoints, with the reference service's paths, fields,
// statuses and JSON shapes.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/iotflow/iotflow/internal/dbhealth"
	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/series"
)

// Deps are what the handler needs. The settings come from the
// configuration (config.Settings holds their defaults) and are taken as
// given.
type Deps struct {
	Service *fleet.Service
	// Series answers the time-series reads.
	Series *series.Service
	// Downlink holds the commands and shadows; nil leaves their routes out.
	Downlink *downlink.Service
	Logger   *slog.Logger
	Version  string
	// RequestTimeout bounds the database work of one request.
	RequestTimeout time.Duration
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64
	// MaxBatch is the most records of a batch submission.
	MaxBatch int
	// Started is when the service started, for the uptime in /health.
	Started time.Time
	// Limits are the rate limits; nil enforces none.
	Limits *Limits
	// ProvisioningToken, when set, must come in X-Provisioning-Token to register.
	ProvisioningToken string
	// MaxBatchBodyBytes caps the body of a batch submission.
	MaxBatchBodyBytes int64
	// Metrics records the service's metrics and serves them at /metrics
	// behind the admin token; nil records nothing and leaves /metrics out.
	Metrics *metrics.Metrics
	// Database, when set, tells whether the database answers: while it
	// does not, requests that need it are answered 503 at once, and those
	// waiting on it are let go.
	Database *dbhealth.Watcher
	// MQTT, when set, tells /health how the MQTT transport stands.
	MQTT func() MQTTState
	// CORSOrigins are the browser origins (scheme://host[:port], or "*")
	// whose pages may call the API; none leaves CORS off.
	CORSOrigins []string
}

type server struct {
	Deps
}

// NewHandler returns the whole API as one http.Handler.
func NewHandler(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Started.IsZero() {
		d.Started = time.Now()
	}
	s := &server{Deps: d}
	mux := http.NewServeMux()

	mux.Handle("GET /{$}", s.index())
	mux.Handle("GET /health", s.health())
	mux.Handle("GET /livez", s.livez())
	mux.Handle("GET /readyz", s.readyz())
	mux.Handle("GET /openapi.json", s.openAPIDoc())
	mux.Handle("GET /docs", s.docsPage())
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.admin(s.metrics))
	}

	// Device API: registration is open, everything else needs X-API-Key.
	mux.Handle("POST /api/v1/devices/register", s.register())
	mux.Handle("GET /api/v1/devices/status", s.device(limitDevice, s.deviceStatus))
	mux.Handle(routeTelemetry, s.device(limitTelemetry, s.submitTelemetry))
	mux.Handle(routeBatch, s.device(limitInHandler, s.submitBatch))
	mux.Handle("GET /api/v1/devices/telemetry", s.device(limitDevice, s.deviceTelemetry))
	mux.Handle("GET /api/v1/devices/telemetry/series", s.device(limitDevice, s.deviceSeries))
	mux.Handle("GET /api/v1/devices/telemetry/latest", s.device(limitDevice, s.deviceLatest))
	mux.Handle("PUT /api/v1/devices/config", s.device(limitDevice, s.updateConfig))
	mux.Handle("POST /api/v1/devices/heartbeat", s.device(limitDevice, s.heartbeat))
	mux.Handle("POST /api/v1/devices/keys/rotate", s.device(limitDevice, s.rotateKey))

	// Admin API: every route needs an admin bearer token.
	mux.Handle("GET /api/v1/admin/devices", s.admin(s.listDevices))
	mux.Handle("GET /api/v1/admin/devices/{id}", s.admin(s.getDevice))
	mux.Handle("PUT /api/v1/admin/devices/{id}", s.admin(s.updateDevice))
	mux.Handle("DELETE /api/v1/admin/devices/{id}", s.admin(s.deleteDevice))
	mux.Handle("GET /api/v1/admin/devices/{id}/keys", s.admin(s.listKeys))
	mux.Handle("POST /api/v1/admin/devices/{id}/keys", s.admin(s.issueKey))
	mux.Handle("DELETE /api/v1/admin/devices/{id}/keys/{key_id}", s.admin(s.revokeKey))
	mux.Handle("GET /api/v1/admin/dashboard", s.admin(s.dashboard))
	mux.Handle("GET /api/v1/admin/telemetry", s.admin(s.listTelemetry))
	mux.Handle("GET /api/v1/admin/devices/{id}/telemetry", s.admin(s.adminDeviceTelemetry))
	mux.Handle("GET /api/v1/admin/devices/{id}/telemetry/series", s.admin(s.adminSeries))
	mux.Handle("GET /api/v1/admin/devices/{id}/telemetry/latest", s.admin(s.adminLatest))
	mux.Handle("GET /api/v1/admin/devices/{id}/telemetry/keys", s.admin(s.adminKeys))
	mux.Handle("GET /api/v1/admin/telemetry/export", s.adminStream(s.export))

	if s.Downlink != nil {
		mux.Handle("POST /api/v1/admin/devices/{id}/commands", s.adminStream(s.issueCommand))
		mux.Handle("GET /api/v1/admin/devices/{id}/commands", s.admin(s.listCommands))
		mux.Handle("GET /api/v1/admin/commands/{cid}", s.admin(s.getCommand))
		mux.Handle("DELETE /api/v1/admin/commands/{cid}", s.admin(s.cancelCommand))
		mux.Handle("GET /api/v1/admin/devices/{id}/shadow", s.adminStream(s.adminShadow))
		mux.Handle("PATCH /api/v1/admin/devices/{id}/shadow", s.admin(s.patchDesired))

		mux.Handle("GET /api/v1/devices/commands", s.deviceLongPoll(s.takeCommands))
		mux.Handle("POST /api/v1/devices/commands/{cid}/result", s.device(limitDevice, s.answerCommand))
		mux.Handle("GET /api/v1/devices/shadow", s.deviceLongPoll(s.deviceShadow))
		mux.Handle("PATCH /api/v1/devices/shadow/reported", s.device(limitDevice, s.patchReported))
		mux.Handle("GET /api/v1/devices/config", s.device(limitDevice, s.getConfig))
		mux.Handle("POST /api/v1/devices/config", s.device(limitDevice, s.setConfig))

		// The reference's later versions.
		mux.Handle("POST /api/v1/devices/{id}/control", s.device(limitDevice, s.controlDevice))
		mux.Handle("GET /api/v1/devices/{id}/control/pending", s.device(limitDevice, s.pendingControls))
		mux.Handle("GET /api/v1/devices/{id}/control/{cid}/status", s.device(limitDevice, s.controlStatus))
		mux.Handle("POST /api/v1/devices/{id}/control/{cid}/status", s.device(limitDevice, s.setControlStatus))
	}

	return s.accessLog(s.recoverPanics(s.requestID(securityHeaders(s.cors(s.CORSOrigins)(s.jsonFallbacks(mux))))))
}

// The telemetry routes, named because the metrics count their records.
const (
	routeTelemetry = "POST /api/v1/devices/telemetry"
	routeBatch     = "POST /api/v1/devices/telemetry/batch"
)

// endpoints is the map shown at GET /.
var endpoints = map[string]any{
	"health":  "GET /health",
	"livez":   "GET /livez",
	"readyz":  "GET /readyz",
	"metrics": "GET /metrics",
	"openapi": "GET /openapi.json",
	"docs":    "GET /docs",
	"devices": map[string]string{
		"register":      "POST /api/v1/devices/register",
		"status":        "GET /api/v1/devices/status",
		"telemetry":     "POST /api/v1/devices/telemetry",
		"batch":         "POST /api/v1/devices/telemetry/batch",
		"get_telemetry": "GET /api/v1/devices/telemetry",
		"series":        "GET /api/v1/devices/telemetry/series",
		"latest":        "GET /api/v1/devices/telemetry/latest",
		"update_config": "PUT /api/v1/devices/config",
		"heartbeat":     "POST /api/v1/devices/heartbeat",
		"rotate_key":    "POST /api/v1/devices/keys/rotate",
		"commands":      "GET /api/v1/devices/commands?wait=N",
		"answer":        "POST /api/v1/devices/commands/{cid}/result",
		"shadow":        "GET /api/v1/devices/shadow",
		"report":        "PATCH /api/v1/devices/shadow/reported",
		"get_config":    "GET /api/v1/devices/config",
		"set_config":    "POST /api/v1/devices/config",
	},
	"admin": map[string]string{
		"list_devices":     "GET /api/v1/admin/devices",
		"device":           "GET /api/v1/admin/devices/{id}",
		"update_device":    "PUT /api/v1/admin/devices/{id}",
		"delete_device":    "DELETE /api/v1/admin/devices/{id}",
		"list_keys":        "GET /api/v1/admin/devices/{id}/keys",
		"issue_key":        "POST /api/v1/admin/devices/{id}/keys",
		"revoke_key":       "DELETE /api/v1/admin/devices/{id}/keys/{key_id}",
		"dashboard":        "GET /api/v1/admin/dashboard",
		"telemetry":        "GET /api/v1/admin/telemetry",
		"device_telemetry": "GET /api/v1/admin/devices/{id}/telemetry",
		"device_series":    "GET /api/v1/admin/devices/{id}/telemetry/series",
		"device_latest":    "GET /api/v1/admin/devices/{id}/telemetry/latest",
		"device_keys":      "GET /api/v1/admin/devices/{id}/telemetry/keys",
		"export":           "GET /api/v1/admin/telemetry/export",
		"issue_command":    "POST /api/v1/admin/devices/{id}/commands",
		"device_commands":  "GET /api/v1/admin/devices/{id}/commands",
		"command":          "GET /api/v1/admin/commands/{cid}",
		"cancel_command":   "DELETE /api/v1/admin/commands/{cid}",
		"shadow":           "GET /api/v1/admin/devices/{id}/shadow",
		"patch_shadow":     "PATCH /api/v1/admin/devices/{id}/shadow",
	},
}
