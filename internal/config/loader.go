package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// loader reads typed values and keeps the first error, which names the variable.
type loader struct {
	get func(string) string
	err error
}

func (l *loader) fail(name, format string, args ...any) {
	if l.err == nil {
		l.err = fmt.Errorf("invalid %s: %s", name, fmt.Sprintf(format, args...))
	}
}

// str returns the variable's value or its default.
func (l *loader) str(name string) string {
	if v := l.get(name); v != "" {
		return v
	}
	return defaultOf(name)
}

func defaultOf(name string) string {
	for _, s := range Settings {
		if s.Name == name {
			return s.Default
		}
	}
	panic("config: no setting named " + name)
}

func (l *loader) intRange(name string, min, max int) int {
	v := l.str(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		l.fail(name, "%q is not a whole number from %d to %d", v, min, max)
	}
	return n
}

func (l *loader) boolean(name string) bool {
	v := l.str(name)
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	l.fail(name, "%q is not true or false", v)
	return false
}

func (l *loader) oneOf(name string, allowed ...string) string {
	v := strings.ToLower(l.str(name))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return allowed[0]
}

// duration takes a Go duration ("90s", "5m") or a whole number of seconds.
func (l *loader) duration(name string) time.Duration {
	v := l.str(name)
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			l.fail(name, "%q is not a duration such as 300s or 5m", v)
			return 0
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		l.fail(name, "%q must be positive", v)
	}
	return d
}

// retention reads a span such as 90d, 2w or 36h, at least an hour; unset
// is 0, keeping everything.
func (l *loader) retention(name string) time.Duration {
	v := l.str(name)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, unit := strings.TrimRight(v, "dw"), strings.TrimLeft(v, "0123456789"); unit == "d" || unit == "w" {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100*366 {
			l.fail(name, "%q is not a span such as 90d, 2w or 36h", v)
			return 0
		}
		d = time.Duration(days) * 24 * time.Hour
		if unit == "w" {
			d *= 7
		}
	} else if parsed, err := time.ParseDuration(v); err == nil {
		d = parsed
	} else {
		l.fail(name, "%q is not a span such as 90d, 2w or 36h", v)
		return 0
	}
	if d < time.Hour {
		l.fail(name, "%q is less than an hour", v)
	}
	return d
}

// durationOrZero is duration but accepts 0.
func (l *loader) durationOrZero(name string) time.Duration {
	if v := l.str(name); v == "0" || v == "0s" {
		return 0
	}
	return l.duration(name)
}

func (l *loader) level(debug bool) slog.Level {
	v := l.get("LOG_LEVEL")
	if v == "" {
		if debug {
			return slog.LevelDebug
		}
		v = defaultOf("LOG_LEVEL")
	}
	switch strings.ToUpper(v) {
	case "DEBUG":
		return slog.LevelDebug
	case "INFO":
		return slog.LevelInfo
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR", "CRITICAL":
		return slog.LevelError
	}
	l.fail("LOG_LEVEL", "%q is not one of DEBUG, INFO, WARNING, ERROR", v)
	return slog.LevelInfo
}

// databaseURL returns DATABASE_URL, or one built from the DB_* variables
// when DB_HOST is set, or "" for the embedded database.
func (l *loader) databaseURL() string {
	if v := l.get("DATABASE_URL"); v != "" {
		const want = "must be a postgres:// URL that names its server, such as postgres://user:pass@host:5432/db " +
			"or postgres://user@/db?host=/var/run/postgresql (unset it for the embedded database)"
		if !(strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")) || !namesHost(v) {
			l.fail("DATABASE_URL", "%s", want)
			return ""
		}
		// The driver's own parser decides the rest, so that every form it
		// reads is accepted; its errors hide passwords.
		if _, err := pgconn.ParseConfig(v); err != nil {
			l.fail("DATABASE_URL", "%s: %v", want, err)
			return ""
		}
		return v
	}
	host := l.get("DB_HOST")
	if host == "" {
		return ""
	}
	port := l.intRange("DB_PORT", 1, 65535)
	u := url.URL{
		Scheme: "postgres",
		Host:   net.JoinHostPort(host, strconv.Itoa(port)),
		Path:   "/" + l.str("DB_NAME"),
	}
	if pw := l.get("DB_PASSWORD"); pw != "" {
		u.User = url.UserPassword(l.str("DB_USER"), pw)
	} else {
		u.User = url.User(l.str("DB_USER"))
	}
	return u.String()
}

// namesHost reports whether a postgres:// URL names its server: a host (or
// a %2F-escaped socket directory) in the authority, or a host parameter.
// Without one the driver would pick a local default, which for a URL put
// together from an empty variable is never what was meant.
func namesHost(v string) bool {
	rest := v[strings.Index(v, "://")+3:]
	authority, query := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		query = rest[i+1:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	for _, h := range strings.Split(authority, ",") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		if h != "" {
			return true
		}
	}
	q, err := url.ParseQuery(query)
	return err == nil && q.Get("host") != ""
}

func (l *loader) redisURL() string {
	v := l.get("REDIS_URL")
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		l.fail("REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
		return ""
	}
	return v
}

// hostPort returns an optional host:port listen address.
func (l *loader) hostPort(name string) string {
	v := l.str(name)
	if v == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		l.fail(name, "%q is not a host:port address such as 127.0.0.1:9090", v)
		return ""
	}
	return v
}

// listenAddr reads a host:port (the host may be empty) or "off" (given as
// ""), and whether the variable was set rather than defaulted.
func (l *loader) listenAddr(name string) (string, bool) {
	set := l.get(name) != ""
	v := l.str(name)
	if strings.EqualFold(v, "off") {
		return "", set
	}
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		l.fail(name, "%q is not a listen address such as :1883 or 127.0.0.1:1883, nor off", v)
		return "", set
	}
	return v, set
}

// origins reads a comma-separated list of browser origins
// (scheme://host[:port]); "none" gives an empty list.
func (l *loader) origins(name string) []string {
	v := l.str(name)
	if strings.EqualFold(v, "none") {
		return nil
	}
	var out []string
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o == "*" {
			out = append(out, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			l.fail(name, "%q is not an origin such as https://dashboard.example.com", o)
			return nil
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out
}
