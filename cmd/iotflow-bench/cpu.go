package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iotflow/iotflow/internal/procstat"
)

// cpuSample is the CPU time used so far by the server under test, by this
// load generator and by the whole machine, read from /proc (Linux); a field
// is zero where it cannot be read.
type cpuSample struct {
	server, self    time.Duration
	busy, total     int64 // the machine's ticks: not idle, and all
	serverReadable  bool
	machineReadable bool
}

func sampleCPU(pid int) cpuSample {
	var s cpuSample
	if pid != 0 {
		s.server, s.serverReadable = procstat.CPU(pid)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		s.busy, s.total, s.machineReadable = parseMachineCPU(string(b))
	}
	return s
}

// parseMachineCPU returns the busy and total ticks of /proc/stat's "cpu"
// line; idle and iowait count as not busy.
func parseMachineCPU(stat string) (busy, total int64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest time is counted in user time already
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, true
}

// cpuUse is what a measured window cost in CPU.
type cpuUse struct {
	serverPerReq, selfPerReq time.Duration // zero when unknown
	machineBusy              float64       // share of all CPUs busy, 0..1; -1 when unknown
}

func cpuBetween(a, b cpuSample, requests int64) cpuUse {
	u := cpuUse{machineBusy: -1}
	if requests > 0 {
		if a.serverReadable && b.serverReadable {
			u.serverPerReq = (b.server - a.server) / time.Duration(requests)
		}
		u.selfPerReq = (b.self - a.self) / time.Duration(requests)
	}
	if a.machineReadable && b.machineReadable && b.total > a.total {
		u.machineBusy = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return u
}
