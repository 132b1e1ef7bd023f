package main

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift the fields.
	stat := "4242 (iot flow) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 0 0"
	if got, ok := parseStatCPU(stat); !ok || got != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s", got, ok)
	}
	for _, bad := range []string{"", "4242 (short) S 1 2", "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 5 0"} {
		if _, ok := parseStatCPU(bad); ok {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
}

func TestParseMachineCPU(t *testing.T) {
	stat := "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"
	busy, total, ok := parseMachineCPU(stat)
	// busy: user+nice+system+irq+softirq+steal; guest is inside user already.
	if !ok || busy != 160 || total != 1000 {
		t.Errorf("parseMachineCPU = %d, %d, %v; want 160, 1000, true", busy, total, ok)
	}
	if _, _, ok := parseMachineCPU("intr 1 2 3\n"); ok {
		t.Error("parseMachineCPU accepted a file without a cpu line")
	}
}

func TestSampleCPUCountsWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	a := sampleCPU(os.Getpid())
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	b := sampleCPU(os.Getpid())
	u := cpuBetween(a, b, 10)
	// 300 ms of spinning over 10 "requests" is about 30 ms each, seen both
	// through /proc (in 10 ms ticks) and through getrusage.
	if u.serverPerReq < 15*time.Millisecond || u.selfPerReq < 15*time.Millisecond {
		t.Errorf("per request: /proc %v, rusage %v; want about 30ms each", u.serverPerReq, u.selfPerReq)
	}
	if u.machineBusy <= 0 || u.machineBusy > 1 {
		t.Errorf("machine busy %v, want within (0, 1]", u.machineBusy)
	}
	if u := cpuBetween(a, b, 0); u.serverPerReq != 0 || u.selfPerReq != 0 {
		t.Errorf("no requests gave per-request CPU %v", u)
	}
}
