package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(mapEnv(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "0.0.0.0" || c.Port != 5000 || c.Addr() != "0.0.0.0:5000" {
		t.Errorf("listen = %s:%d", c.Host, c.Port)
	}
	if c.UsesPostgres() || c.SQLitePath() != filepath.Join("data", "iotflow.db") {
		t.Errorf("storage = %q %q", c.DatabaseURL, c.SQLitePath())
	}
	if c.LogLevel != slog.LevelInfo || c.LogFile != "logs/iotflow.log" || c.LogFormat != "text" {
		t.Errorf("logging = %v %q %q", c.LogLevel, c.LogFile, c.LogFormat)
	}
	if c.RedisPrefix != "iotflow:rl:" || c.TelemetryRateLimitPerMinute != 100 || c.MaxBodyBytes != 65536 || c.WriteWriters != 1 {
		t.Errorf("defaults: prefix %q telemetry %d body %d writers %d", c.RedisPrefix, c.TelemetryRateLimitPerMinute, c.MaxBodyBytes, c.WriteWriters)
	}
	if c.OnlineTimeout != 300*time.Second || c.RateLimitPerMinute != 60 || c.LastSeenFlush != 5*time.Second {
		t.Errorf("timeouts = %v %d %v", c.OnlineTimeout, c.RateLimitPerMinute, c.LastSeenFlush)
	}
}

func TestLoadValues(t *testing.T) {
	c, err := Load(mapEnv(map[string]string{
		"PORT": "8080", "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "LOG_FILE": "off",
		"IOTFLOW_ONLINE_TIMEOUT": "60", "IOTFLOW_DATA_DIR": "/var/lib/iotflow", "DEBUG": "true",
		"LOG_FORMAT": "JSON", "REDIS_URL": "redis://localhost:6379/0",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "127.0.0.1:8080" || c.LogLevel != slog.LevelWarn || c.LogFile != "" || c.LogFormat != "json" {
		t.Errorf("got %s %v %q %q", c.Addr(), c.LogLevel, c.LogFile, c.LogFormat)
	}
	if c.OnlineTimeout != time.Minute || c.SQLitePath() != "/var/lib/iotflow/iotflow.db" || !c.Debug {
		t.Errorf("got %v %q %v", c.OnlineTimeout, c.SQLitePath(), c.Debug)
	}
}

func TestDebugLowersDefaultLevel(t *testing.T) {
	c, err := Load(mapEnv(map[string]string{"DEBUG": "1"}), nil)
	if err != nil || c.LogLevel != slog.LevelDebug {
		t.Fatalf("level %v err %v", c.LogLevel, err)
	}
}

// withoutPGEnv clears the libpq variables that the driver's parser reads
// besides the URL, so that the tests do not depend on the environment.
func withoutPGEnv(t *testing.T) {
	for _, name := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE",
		"PGSERVICE", "PGSERVICEFILE", "PGSYSCONFDIR", "PGSSLMODE", "PGSSLCERT", "PGSSLKEY", "PGSSLROOTCERT",
		"PGAPPNAME", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS", "PGOPTIONS"} {
		t.Setenv(name, "")
	}
}

func TestDatabaseURLFromParts(t *testing.T) {
	withoutPGEnv(t)
	c, err := Load(mapEnv(map[string]string{
		"DB_HOST": "db.example", "DB_PORT": "6543", "DB_NAME": "fleet", "DB_USER": "svc", "DB_PASSWORD": "p@ss word",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "postgres://svc:p%40ss%20word@db.example:6543/fleet"
	if c.DatabaseURL != want || !c.UsesPostgres() {
		t.Errorf("DatabaseURL = %q, want %q", c.DatabaseURL, want)
	}
	c, err = Load(mapEnv(map[string]string{"DATABASE_URL": "postgresql://u@h/db", "DB_HOST": "ignored"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgresql://u@h/db" {
		t.Errorf("DATABASE_URL should win, got %q", c.DatabaseURL)
	}
}

// TestDatabaseURLUnixSocket: a local PostgreSQL is often reached through
// its Unix socket, named as libpq names it.
func TestDatabaseURLUnixSocket(t *testing.T) {
	withoutPGEnv(t)
	c, err := Load(mapEnv(map[string]string{"DB_HOST": "/var/run/postgresql", "DB_NAME": "fleet", "DB_USER": "svc"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "postgres://svc@%2Fvar%2Frun%2Fpostgresql:5432/fleet" // the driver takes an escaped path as a socket directory
	if c.DatabaseURL != want || !c.UsesPostgres() {
		t.Errorf("DatabaseURL = %q, want %q", c.DatabaseURL, want)
	}
	for _, v := range []string{"postgres:///fleet?host=/var/run/postgresql", "postgresql://svc@/fleet?host=%2Ftmp&sslmode=disable", "postgres://svc@%2Ftmp/fleet"} {
		c, err := Load(mapEnv(map[string]string{"DATABASE_URL": v}), nil)
		if err != nil {
			t.Errorf("DATABASE_URL %q: %v", v, err)
		} else if c.DatabaseURL != v {
			t.Errorf("DATABASE_URL %q became %q", v, c.DatabaseURL)
		}
	}
	for v, cause := range map[string]string{
		"postgres://h/fleet?sslmode=sometimes": "sslmode",
		"postgres://[::1/fleet":                "",
		"host=/tmp dbname=fleet":               "",
		// No server named: an empty variable in a URL put together in a
		// script must not quietly mean the local default socket.
		"postgres:///fleet":                                "",
		"postgres://u:secret@/fleet":                       "",
		"postgres://u@:5432/fleet":                         "",
		"postgres:///fleet?host=":                          "",
		"postgres://u:s3cret@h/fleet?connect_timeout=soon": "connect_timeout",
	} {
		_, err := Load(mapEnv(map[string]string{"DATABASE_URL": v}), nil)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
			t.Errorf("DATABASE_URL %q: err = %v, want one naming DATABASE_URL", v, err)
			continue
		}
		if !strings.Contains(err.Error(), cause) {
			t.Errorf("DATABASE_URL %q: err = %v, want the driver's reason (%s)", v, err, cause)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "secret@") {
			t.Errorf("DATABASE_URL %q: the error shows the password: %v", v, err)
		}
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"PORT":                   "http",
		"LOG_LEVEL":              "LOUD",
		"LOG_FORMAT":             "xml",
		"DEBUG":                  "maybe",
		"RATE_LIMIT_PER_MINUTE":  "0",
		"IOTFLOW_ONLINE_TIMEOUT": "soon",
		"DATABASE_URL":           "mysql://localhost/db",
		"REDIS_URL":              "http://localhost",
		"IOTFLOW_ADMIN_TOKEN":    "short",
		"DB_PORT":                "99999",
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{name: value}
			if name == "DB_PORT" {
				env["DB_HOST"] = "localhost"
			}
			_, err := Load(mapEnv(env), nil)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("err = %v, want one naming %s", err, name)
			}
		})
	}
}

func TestDotEnvFallbackAndEnvironmentWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte("PORT=7000\nHOST=127.0.0.2\n# comment\nLOG_LEVEL=ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dotenv, err := ReadDotEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(mapEnv(map[string]string{"PORT": "7001"}), dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7001 || c.Host != "127.0.0.2" || c.LogLevel != slog.LevelError {
		t.Errorf("got port %d host %s level %v", c.Port, c.Host, c.LogLevel)
	}
	if m, err := ReadDotEnv(filepath.Join(t.TempDir(), "missing")); err != nil || len(m) != 0 {
		t.Errorf("missing .env: %v %v", m, err)
	}
}

// TestReadmeListsEverySetting keeps the README's configuration table true.
func TestReadmeListsEverySetting(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range Settings {
		row := "| `" + s.Name + "` |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md has no table row starting %q", row)
			continue
		}
		line := readme[strings.Index(readme, row):]
		line = line[:strings.Index(line, "\n")]
		if s.Default != "" && !strings.Contains(line, "`"+s.Default+"`") {
			t.Errorf("README row of %s does not give the default `%s`: %s", s.Name, s.Default, line)
		}
	}
}

// TestDefaults: the defaults load, and are what the settings table says.
func TestDefaults(t *testing.T) {
	c := Defaults()
	if c.Port != 5000 || c.MaxBodyBytes != 65536 || c.WriteBatch != 1000 || c.AuthCacheSize != 10000 || c.UsesPostgres() {
		t.Fatalf("Defaults() = %+v", c)
	}
}

func TestRetention(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "90d": 90 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour} {
		c, err := Load(func(n string) string {
			if n == "IOTFLOW_RETENTION" {
				return v
			}
			return ""
		}, nil)
		if err != nil || c.Retention != want {
			t.Errorf("IOTFLOW_RETENTION=%q: %v, %v; want %v", v, c, err, want)
		}
	}
	for _, v := range []string{"30m", "0d", "ninety", "9x", "d", "-1d", "1.5d"} {
		_, err := Load(func(n string) string {
			if n == "IOTFLOW_RETENTION" {
				return v
			}
			return ""
		}, nil)
		if err == nil || !strings.Contains(err.Error(), "IOTFLOW_RETENTION") {
			t.Errorf("IOTFLOW_RETENTION=%q: %v, want an error naming it", v, err)
		}
	}
}
