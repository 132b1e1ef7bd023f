//go:build unix

package sqlite

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// BenchmarkInsertReadings measures one group-commit batch as the ingest
// pipeline sends it under load: a few readings of different devices, each
// with its own message id. Besides the time it reports the process's CPU
// time per batch, which the fsync of each commit does not hide.
func BenchmarkInsertReadings(b *testing.B) {
	for _, size := range []int{1, 9, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := b.Context()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "iotflow.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			const devices = 100
			ids := make([]int64, devices)
			now := time.Now()
			for i := range ids {
				d := &iotflow.Device{Name: fmt.Sprintf("bench-%d", i), DeviceType: "sensor", Status: "active",
					CreatedAt: now, UpdatedAt: now}
				if err := s.CreateDevice(ctx, d, nil); err != nil {
					b.Fatal(err)
				}
				ids[i] = d.ID
			}
			payload := json.RawMessage(`{"temperature":21.5,"humidity":47,"battery":97}`)
			metadata := json.RawMessage(`{"fw":"1.2.3"}`)
			var cpu0 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
			n := 0
			for b.Loop() {
				rs := make([]*iotflow.Reading, size)
				for j := range rs {
					n++
					t := time.Now()
					rs[j] = &iotflow.Reading{DeviceID: ids[(n*37)%devices], Timestamp: t, ReceivedAt: t,
						DataType: "sensor", Payload: payload, Metadata: metadata, MessageID: fmt.Sprintf("m-%d", n)}
				}
				if err := s.InsertReadings(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
			var cpu1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu1)
			cpu := time.Duration(cpu1.Utime.Nano() + cpu1.Stime.Nano() - cpu0.Utime.Nano() - cpu0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/reading")
		})
	}
}
