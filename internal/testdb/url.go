package testdb

import (
	"net/url"
	"strings"
)

// withSearchPath adds search_path to a postgres:// URL or a key=value
// connection string.
func withSearchPath(conn, schema string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return conn + " search_path=" + schema
}
