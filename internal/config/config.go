// Package config loads IoTFlow's settings from the environment and an
// optional .env file, validates them, and describes them for the README.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Config is every setting of the service. Load fills it; the zero value is
// not meant to be used.
type Config struct {
	// DatabaseURL is a postgres:// URL; empty selects the embedded SQLite database.
	DatabaseURL string
	DataDir     string

	Host string
	Port int

	SecretKey string
	Debug     bool
	LogLevel  slog.Level
	LogFormat string // "text" or "json"
	LogFile   string // "" disables the file log
	// LogMaxSizeMB and LogMaxBackups configure the file log's rotation.
	LogMaxSizeMB  int
	LogMaxBackups int

	// MetricsAddr, when set, serves /metrics unprotected on its own listener.
	MetricsAddr string
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS.
	TLSCertFile string
	TLSKeyFile  string
	// CORSOrigins are the browser origins allowed to call the API.
	CORSOrigins []string

	RateLimitPerMinute          int
	TelemetryRateLimitPerMinute int
	BacklogRateLimitPerHour     int
	RegisterRateLimitPerMinute  int
	AuthFailureLimitPerMinute   int
	AdminRateLimitPerMinute     int
	RedisURL                    string
	RedisPrefix                 string
	MaxBodyBytes                int64
	MaxBatchBodyBytes           int64

	OnlineTimeout     time.Duration
	AdminToken        string
	LastSeenFlush     time.Duration
	ShutdownTimeout   time.Duration
	RequestTimeout    time.Duration
	ReadHeaderTimeout time.Duration
	ProvisioningToken string
	KeyRotationGrace  time.Duration

	MaxBatch      int
	MaxClockSkew  time.Duration
	AuthCacheSize int
	AuthCacheTTL  time.Duration

	// Retention is how long readings are kept; 0 keeps them all.
	Retention time.Duration

	// MQTT: the listen addresses ("" when off); MQTTAddrSet says that
	// IOTFLOW_MQTT_ADDR was given, so that a port it cannot bind stops the
	// start (the default may be taken by another broker: then MQTT is off).
	MQTTAddr           string
	MQTTAddrSet        bool
	MQTTTLSAddr        string
	MQTTTLSAddrSet     bool
	MQTTMaxPacketBytes int
	MQTTMaxInflight    int
	MQTTMaxPending     int
	MQTTSessionExpiry  time.Duration
	MQTTMaxConnections int

	// The write pipeline (group commit).
	WriteBatch   int
	WriteQueue   int
	WriteWriters int
	WriteLinger  time.Duration
}

// Addr is the listen address.
func (c *Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// SQLitePath is the embedded database file.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "iotflow.db") }

// UsesPostgres reports whether PostgreSQL is configured.
func (c *Config) UsesPostgres() bool { return c.DatabaseURL != "" }

// Setting describes one environment variable; Settings is the single source
// of truth for names, defaults and meaning (the README's table is checked
// against it by a test).
type Setting struct {
	Name    string
	Default string
	Usage   string
}

// Settings lists every variable Load reads.
var Settings = []Setting{
	{"DATABASE_URL", "", "PostgreSQL URL (postgres://user:pass@host:5432/db). Unset: the embedded SQLite database."},
	{"DB_HOST", "", "PostgreSQL host; used with DB_PORT, DB_NAME, DB_USER, DB_PASSWORD when DATABASE_URL is unset."},
	{"DB_PORT", "5432", "PostgreSQL port."},
	{"DB_NAME", "iotflow", "PostgreSQL database name."},
	{"DB_USER", "iotflow", "PostgreSQL user."},
	{"DB_PASSWORD", "", "PostgreSQL password."},
	{"IOTFLOW_DATA_DIR", "./data", "Directory of the embedded database (iotflow.db)."},
	{"HOST", "0.0.0.0", "Listen address."},
	{"PORT", "5000", "Listen port (0 picks a free port)."},
	{"SECRET_KEY", "", "Accepted for compatibility with the reference service; IoTFlow keeps no sessions and does not use it."},
	{"DEBUG", "false", "true makes DEBUG the default log level."},
	{"LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR."},
	{"LOG_FORMAT", "text", "text or json."},
	{"LOG_FILE", "logs/iotflow.log", "Log file, rotated at 10 MB keeping 5 backups; `off` disables it."},
	{"LOG_FILE_MAX_SIZE_MB", "10", "Size in MB at which the log file is rotated."},
	{"LOG_FILE_BACKUPS", "5", "Rotated log files kept."},
	{"IOTFLOW_METRICS_ADDR", "", "When set (host:port), /metrics is served without a token on this separate listener; unset, /metrics on the main listener needs the admin bearer token."},
	{"IOTFLOW_TLS_CERT_FILE", "", "PEM certificate (chain) file; with IOTFLOW_TLS_KEY_FILE the service speaks HTTPS (HTTP/2, TLS 1.2+). Re-read on SIGHUP or when the files change."},
	{"IOTFLOW_TLS_KEY_FILE", "", "PEM private key file for IOTFLOW_TLS_CERT_FILE."},
	{"IOTFLOW_CORS_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000", "Comma-separated browser origins allowed by CORS; `none` allows none."},
	{"RATE_LIMIT_PER_MINUTE", "60", "Requests per minute per device to status, config, heartbeat and reading telemetry."},
	{"TELEMETRY_RATE_LIMIT_PER_MINUTE", "100", "Readings per minute per device, single or in batches."},
	{"IOTFLOW_BACKLOG_RATE_LIMIT_PER_HOUR", "6000", "Further readings per hour per device for batches the telemetry limit refuses (flushing a backlog)."},
	{"IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE", "10", "Registrations per minute per client address."},
	{"IOTFLOW_AUTH_FAILURE_LIMIT_PER_MINUTE", "10", "Failed authentications (wrong or missing device keys, admin tokens, provisioning tokens) per minute per client address; past it those get 429, while valid credentials are served as usual."},
	{"IOTFLOW_ADMIN_RATE_LIMIT_PER_MINUTE", "600", "Admin requests per minute per admin token."},
	{"REDIS_URL", "", "redis:// URL: rate limits shared by every node, and the wake-ups of their long polls; unset keeps limits in memory and wakes through PostgreSQL."},
	{"IOTFLOW_REDIS_PREFIX", "iotflow:rl:", "Prefix of the rate-limit keys in Redis, and of the wake-up channel (PREFIXwake), for deployments that share one Redis."},
	{"IOTFLOW_ONLINE_TIMEOUT", "300s", "A device is online when seen within this long (seconds or a Go duration)."},
	{"IOTFLOW_PROVISIONING_TOKEN", "", "When set, registration requires it in the X-Provisioning-Token header (at least 16 characters); unset, registration is open and a warning is logged at start."},
	{"IOTFLOW_KEY_ROTATION_GRACE", "24h", "How long a device's previous key keeps working after POST /api/v1/devices/keys/rotate."},
	{"IOTFLOW_ADMIN_TOKEN", "", "Static admin bearer token (at least 16 characters), accepted beside tokens minted by `iotflow admin create-token`."},
	{"IOTFLOW_LAST_SEEN_FLUSH", "5s", "How often last_seen times kept in memory are written to the database."},
	{"IOTFLOW_SHUTDOWN_TIMEOUT", "10s", "How long shutdown waits for requests in flight."},
	{"IOTFLOW_REQUEST_TIMEOUT", "10s", "Deadline of the database work of one request."},
	{"IOTFLOW_READ_HEADER_TIMEOUT", "5s", "How long a client may take to send its request headers; slower ones are cut off."},
	{"IOTFLOW_MAX_BATCH", "1000", "Most records of one POST /api/v1/devices/telemetry/batch."},
	{"IOTFLOW_MAX_BODY_BYTES", "65536", "Largest request body; larger gets 413."},
	{"IOTFLOW_MAX_BATCH_BODY_BYTES", "1048576", "Largest body of a batch submission."},
	{"IOTFLOW_MAX_CLOCK_SKEW", "5m", "How far in the future a device-supplied timestamp may lie."},
	{"IOTFLOW_AUTH_CACHE_SIZE", "10000", "API keys kept in memory, and as many recently refused keys and admin tokens; 0 disables both caches."},
	{"IOTFLOW_AUTH_CACHE_TTL", "5s", "How long a cached API key (or refused one) lives: the bound on how long another node's revocation, deactivation or new key goes unseen."},
	{"IOTFLOW_WRITE_BATCH", "1000", "Most readings committed in one transaction; 1 commits each request alone."},
	{"IOTFLOW_WRITE_QUEUE", "4096", "Requests that may wait for a write; beyond it telemetry gets 503 with Retry-After."},
	{"IOTFLOW_WRITE_WRITERS", "1", "Transactions writing at once; more helps only when the database has cores to spare."},
	{"IOTFLOW_WRITE_LINGER", "0s", "How long a write waits for more readings to join its batch; 0 adds no latency."},
	{"IOTFLOW_MQTT_ADDR", ":1883", "MQTT (3.1.1 and 5) listen address, `off` to disable. When the default port is taken (another broker runs there) the service starts without MQTT and says so in its log and /health; an address set explicitly that cannot be bound stops the start."},
	{"IOTFLOW_MQTT_TLS_ADDR", ":8883", "MQTT over TLS listen address, with the certificate of IOTFLOW_TLS_CERT_FILE (only when it is set); `off` to disable."},
	{"IOTFLOW_MQTT_MAX_PACKET_BYTES", "262144", "Largest MQTT packet a client may send; larger ones close its connection. Readings are also held to IOTFLOW_MAX_BODY_BYTES and batches to IOTFLOW_MAX_BATCH_BODY_BYTES."},
	{"IOTFLOW_MQTT_MAX_INFLIGHT", "100", "QoS 1 messages (commands, shadow changes) a client may have unacknowledged, and QoS 1 publishes it may have in flight to the service."},
	{"IOTFLOW_MQTT_MAX_PENDING_WRITES", "64", "Packets queued to one client; past it, messages to a client that does not read are dropped (commands stay stored and time out), never queued without bound."},
	{"IOTFLOW_MQTT_SESSION_EXPIRY", "1h", "Longest a disconnected client's session (its subscriptions) is kept."},
	{"IOTFLOW_MQTT_MAX_CONNECTIONS", "100000", "Most MQTT connections at once; more are refused with server unavailable."},
	{"IOTFLOW_RETENTION", "", "How long readings are kept, by their own time, such as 90d or 12h (at least 1h); older ones are removed continuously. Unset: kept forever."},
}

// ReadDotEnv reads the .env file at path into a map; a missing file gives
// an empty map.
func ReadDotEnv(path string) (map[string]string, error) {
	m, err := godotenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}

// Load builds the Config from getenv, falling back to dotenv for variables
// the environment leaves empty, and validates it. Errors name the variable.
func Load(getenv func(string) string, dotenv map[string]string) (*Config, error) {
	l := loader{get: func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return strings.TrimSpace(dotenv[name])
	}}
	c := &Config{
		DatabaseURL:                 l.databaseURL(),
		DataDir:                     l.str("IOTFLOW_DATA_DIR"),
		Host:                        l.str("HOST"),
		Port:                        l.intRange("PORT", 0, 65535),
		SecretKey:                   l.str("SECRET_KEY"),
		Debug:                       l.boolean("DEBUG"),
		LogFormat:                   l.oneOf("LOG_FORMAT", "text", "json"),
		LogFile:                     l.str("LOG_FILE"),
		RateLimitPerMinute:          l.intRange("RATE_LIMIT_PER_MINUTE", 1, 100_000_000),
		TelemetryRateLimitPerMinute: l.intRange("TELEMETRY_RATE_LIMIT_PER_MINUTE", 1, 100_000_000),
		BacklogRateLimitPerHour:     l.intRange("IOTFLOW_BACKLOG_RATE_LIMIT_PER_HOUR", 1, 1_000_000_000),
		RegisterRateLimitPerMinute:  l.intRange("IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE", 1, 100_000_000),
		AuthFailureLimitPerMinute:   l.intRange("IOTFLOW_AUTH_FAILURE_LIMIT_PER_MINUTE", 1, 100_000_000),
		AdminRateLimitPerMinute:     l.intRange("IOTFLOW_ADMIN_RATE_LIMIT_PER_MINUTE", 1, 100_000_000),
		MaxBodyBytes:                int64(l.intRange("IOTFLOW_MAX_BODY_BYTES", 1024, 1<<30)),
		MaxBatchBodyBytes:           int64(l.intRange("IOTFLOW_MAX_BATCH_BODY_BYTES", 1024, 1<<30)),
		RedisURL:                    l.redisURL(),
		RedisPrefix:                 l.str("IOTFLOW_REDIS_PREFIX"),
		OnlineTimeout:               l.duration("IOTFLOW_ONLINE_TIMEOUT"),
		AdminToken:                  l.str("IOTFLOW_ADMIN_TOKEN"),
		LastSeenFlush:               l.duration("IOTFLOW_LAST_SEEN_FLUSH"),
		ShutdownTimeout:             l.duration("IOTFLOW_SHUTDOWN_TIMEOUT"),
		RequestTimeout:              l.duration("IOTFLOW_REQUEST_TIMEOUT"),
		MaxBatch:                    l.intRange("IOTFLOW_MAX_BATCH", 1, 100_000),
		MaxClockSkew:                l.duration("IOTFLOW_MAX_CLOCK_SKEW"),
		AuthCacheSize:               l.intRange("IOTFLOW_AUTH_CACHE_SIZE", 0, 10_000_000),
		AuthCacheTTL:                l.duration("IOTFLOW_AUTH_CACHE_TTL"),
		WriteBatch:                  l.intRange("IOTFLOW_WRITE_BATCH", 1, 100_000),
		WriteQueue:                  l.intRange("IOTFLOW_WRITE_QUEUE", 1, 10_000_000),
		WriteLinger:                 l.durationOrZero("IOTFLOW_WRITE_LINGER"),
	}
	c.WriteWriters = l.intRange("IOTFLOW_WRITE_WRITERS", 1, 64)
	c.Retention = l.retention("IOTFLOW_RETENTION")
	c.ReadHeaderTimeout = l.duration("IOTFLOW_READ_HEADER_TIMEOUT")
	c.ProvisioningToken = l.str("IOTFLOW_PROVISIONING_TOKEN")
	c.KeyRotationGrace = l.duration("IOTFLOW_KEY_ROTATION_GRACE")
	if c.ProvisioningToken != "" && len(c.ProvisioningToken) < 16 {
		l.fail("IOTFLOW_PROVISIONING_TOKEN", "must be at least 16 characters")
	}
	c.LogLevel = l.level(c.Debug)
	c.LogMaxSizeMB = l.intRange("LOG_FILE_MAX_SIZE_MB", 1, 100_000)
	c.LogMaxBackups = l.intRange("LOG_FILE_BACKUPS", 0, 10_000)
	c.MetricsAddr = l.hostPort("IOTFLOW_METRICS_ADDR")
	c.MQTTAddr, c.MQTTAddrSet = l.listenAddr("IOTFLOW_MQTT_ADDR")
	c.MQTTTLSAddr, c.MQTTTLSAddrSet = l.listenAddr("IOTFLOW_MQTT_TLS_ADDR")
	c.MQTTMaxPacketBytes = l.intRange("IOTFLOW_MQTT_MAX_PACKET_BYTES", 1024, 256<<20)
	c.MQTTMaxInflight = l.intRange("IOTFLOW_MQTT_MAX_INFLIGHT", 1, 65535)
	c.MQTTMaxPending = l.intRange("IOTFLOW_MQTT_MAX_PENDING_WRITES", 1, 1_000_000)
	c.MQTTSessionExpiry = l.duration("IOTFLOW_MQTT_SESSION_EXPIRY")
	c.MQTTMaxConnections = l.intRange("IOTFLOW_MQTT_MAX_CONNECTIONS", 1, 10_000_000)
	c.TLSCertFile = l.str("IOTFLOW_TLS_CERT_FILE")
	c.TLSKeyFile = l.str("IOTFLOW_TLS_KEY_FILE")
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		l.fail("IOTFLOW_TLS_CERT_FILE", "IOTFLOW_TLS_CERT_FILE and IOTFLOW_TLS_KEY_FILE must be set together")
	}
	c.CORSOrigins = l.origins("IOTFLOW_CORS_ORIGINS")
	if strings.EqualFold(c.LogFile, "off") {
		c.LogFile = ""
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		l.fail("IOTFLOW_ADMIN_TOKEN", "must be at least 16 characters")
	}
	if l.err != nil {
		return nil, l.err
	}
	return c, nil
}

// Defaults returns the configuration with every setting at its default:
// what Load gives for an empty environment. Tests build the service's
// parts from it, so that no package keeps defaults of its own.
func Defaults() *Config {
	c, err := Load(func(string) string { return "" }, nil)
	if err != nil {
		panic("config: the defaults do not load: " + err.Error())
	}
	return c
}
