package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// sendPartial opens a connection and sends the start of a request.
func sendPartial(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// finishPartial sends the rest of a request a moment after the signal and
// reads the answer.
func finishPartial(conn net.Conn, rest string, signalled <-chan struct{}) (int, map[string]any, error) {
	<-signalled
	time.Sleep(300 * time.Millisecond)
	if _, err := io.WriteString(conn, rest); err != nil {
		return 0, nil, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	decodeBody(res, &out)
	return res.StatusCode, out, nil
}

// checkShutdownLog checks that the server logged its shutdown and its end,
// and no error: no 5xx answer, no request or reading left behind.
func checkShutdownLog(t *testing.T, out string) {
	t.Helper()
	var shutting, stopped bool
	for _, line := range strings.Split(out, "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case rec.Level == "ERROR":
			t.Errorf("the server logged an error: %s", line)
		case rec.Msg == "shutting down":
			shutting = true
		case rec.Msg == "stopped":
			stopped = true
		}
	}
	if !shutting || !stopped {
		t.Errorf("the log lacks \"shutting down\" (%v) or \"stopped\" (%v):\n%s", shutting, stopped, tail(out, 20))
	}
}

// checkStored checks that every acknowledged reading is stored once under
// its id, that nothing else is stored but readings whose requests the
// shutdown cut off, and that last_seen is no earlier than the latest
// acknowledged heartbeat.
func checkStored(t *testing.T, env map[string]string, devices []loadDevice, l *shutdownLoad) {
	t.Helper()
	ctx := context.Background()
	store := openStore(t, env)
	defer store.Close()
	stored := map[string][]int64{}
	extra := 0
	for _, d := range devices {
		rs, err := store.ListReadings(ctx, iotflow.ReadingFilter{DeviceID: d.id, Limit: 1_000_000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			stored[r.MessageID] = append(stored[r.MessageID], r.ID)
			if _, ok := l.acked[r.MessageID]; ok {
				continue
			}
			extra++
			if !l.unanswered[r.MessageID] || l.device[r.MessageID] != d.id {
				t.Errorf("device %d has reading %d (%q) that was never acknowledged nor cut off", d.id, r.ID, r.MessageID)
			}
		}
		dev, err := store.Device(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		if dev.TelemetryCount != int64(len(rs)) {
			t.Errorf("device %d: telemetry_count %d for %d stored readings", d.id, dev.TelemetryCount, len(rs))
		}
		if hb, ok := l.heartbeat[d.id]; ok && (dev.LastSeen == nil || dev.LastSeen.Before(hb)) {
			t.Errorf("device %d: last_seen %v is before its last heartbeat %v: the kept times were not flushed", d.id, dev.LastSeen, hb)
		}
	}
	for msg, ids := range stored {
		if len(ids) > 1 {
			t.Errorf("%s is stored %d times: %v", msg, len(ids), ids)
		}
	}
	for msg, id := range l.acked {
		if ids := stored[msg]; len(ids) != 1 || ids[0] != id {
			t.Errorf("acknowledged %s (device %d, id %d) is stored as %v", msg, l.device[msg], id, ids)
		}
	}
	if len(l.heartbeat) < len(devices)/2 {
		t.Errorf("only %d devices had a heartbeat acknowledged", len(l.heartbeat))
	}
	if extra > 0 {
		t.Logf("%d readings cut off by the shutdown were stored without an acknowledgement", extra)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
