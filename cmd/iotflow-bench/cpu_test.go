package main

import (
	"os"
	"runtime"
	"testing"
	"time"
)

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
	// Spin until getrusage has seen 300 ms of CPU, however long a busy
	// machine takes to give it; then /proc must have seen the same.
	deadline := time.Now().Add(20 * time.Second)
	var b cpuSample
	for b = sampleCPU(os.Getpid()); b.self-a.self < 300*time.Millisecond; b = sampleCPU(os.Getpid()) {
		if time.Now().After(deadline) {
			t.Skip("the machine gave this test too little CPU")
		}
		for end := time.Now().Add(10 * time.Millisecond); time.Now().Before(end); {
		}
	}
	u := cpuBetween(a, b, 10)
	// /proc counts in 10 ms ticks, and other threads of the test binary
	// (the collector among them) may add a little.
	if u.selfPerReq < 30*time.Millisecond {
		t.Errorf("getrusage: %v per request, want at least 30ms", u.selfPerReq)
	}
	if d := u.serverPerReq - u.selfPerReq; d < -3*time.Millisecond || d > 3*time.Millisecond {
		t.Errorf("/proc says %v per request, getrusage %v: they should agree within a few ticks", u.serverPerReq, u.selfPerReq)
	}
	if u.machineBusy <= 0 || u.machineBusy > 1 {
		t.Errorf("machine busy %v, want within (0, 1]", u.machineBusy)
	}
	if u := cpuBetween(a, b, 0); u.serverPerReq != 0 || u.selfPerReq != 0 {
		t.Errorf("no requests gave per-request CPU %v", u)
	}
}
