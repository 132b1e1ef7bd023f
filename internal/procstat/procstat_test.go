package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift the fields.
	stat := "4242 (iot flow) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 0 0"
	if got, ok := Parse(stat); !ok || got != 3250*time.Millisecond {
		t.Errorf("Parse = %v, %v; want 3.25s", got, ok)
	}
	for _, bad := range []string{"", "4242 (short) S 1 2", "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 5 0"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if _, ok := CPU(os.Getpid()); !ok {
		t.Error("CPU of this process unreadable")
	}
	if _, ok := CPU(-1); ok {
		t.Error("CPU of no process succeeded")
	}
}

func TestStatusKB(t *testing.T) {
	status := "Name:\tiotflow\nVmPeak:\t  812344 kB\nVmRSS:\t   45712 kB\nThreads:\t9\n"
	if got, ok := StatusKB(status, "VmRSS"); !ok || got != 45712 {
		t.Errorf("StatusKB(VmRSS) = %d, %v; want 45712", got, ok)
	}
	for _, field := range []string{"VmSwap", "Threads", "Name"} {
		if got, ok := StatusKB(status, field); ok {
			t.Errorf("StatusKB(%s) = %d, want none", field, got)
		}
	}
	if _, ok := StatusKB("VmRSS:\n", "VmRSS"); ok {
		t.Error("StatusKB read an empty value")
	}
}

func TestRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if kb, ok := RSS(os.Getpid()); !ok || kb <= 0 {
		t.Errorf("RSS of this process = %d, %v", kb, ok)
	}
	if _, ok := RSS(-1); ok {
		t.Error("RSS of no process succeeded")
	}
}
