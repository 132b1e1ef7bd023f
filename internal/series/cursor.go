package series

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// A cursor is where the next page of a read begins: the last reading of
// the page (its time and id), or the next bucket's start, bound to the
// query it came from by a hash of that query's parameters, and closed by a
// checksum. It grants nothing: every read is filtered by the device the
// request may see, whatever a cursor says, so the checksum needs no
// secret; it only tells a cursor that was altered, or that belongs to
// another query, from a good one.
type cursor struct {
	query uint64 // the hash of the query it belongs to
	at    time.Time
	id    int64
	// end is the end of the read it continues, when that was not given
	// but taken from the time of the first page's request.
	end time.Time
}

// queryHash hashes what identifies a query: everything but the cursor and
// the page size.
func queryHash(parts ...string) uint64 {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return binary.BigEndian.Uint64(h[:8])
}

func (c cursor) encode() string {
	b := make([]byte, 0, 5*8)
	b = binary.BigEndian.AppendUint64(b, c.query)
	b = binary.BigEndian.AppendUint64(b, uint64(c.at.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.id))
	var end int64
	if !c.end.IsZero() {
		end = c.end.UnixMicro()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(end))
	sum := sha256.Sum256(b)
	b = append(b, sum[:8]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errCursor = iotflow.Errorf(iotflow.EINVALID, "Invalid request",
	"Query parameter 'cursor' is not a cursor this query gave out: pass next_cursor unchanged, with the same other parameters")

// decodeCursor reads a cursor of the query with the given hash.
func decodeCursor(s string, query uint64) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 40 {
		return cursor{}, errCursor
	}
	sum := sha256.Sum256(b[:32])
	if string(sum[:8]) != string(b[32:]) {
		return cursor{}, errCursor
	}
	c := cursor{
		query: binary.BigEndian.Uint64(b[0:8]),
		at:    time.UnixMicro(int64(binary.BigEndian.Uint64(b[8:16]))).UTC(),
		id:    int64(binary.BigEndian.Uint64(b[16:24])),
	}
	if end := int64(binary.BigEndian.Uint64(b[24:32])); end != 0 {
		c.end = time.UnixMicro(end).UTC()
	}
	if c.query != query {
		return cursor{}, errCursor
	}
	return c, nil
}

// timeKey writes an optional time for a query hash.
func timeKey(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}
