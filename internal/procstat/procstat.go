// Package procstat reads the CPU time and the memory of a process from
// Linux's /proc, for the benchmarks that report CPU per request or per
// batch and the server's memory.
package procstat

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc's tick counts, fixed at 100 by the Linux ABI.
const userHZ = 100

// CPU returns the user and system CPU time process pid has used, all its
// threads together; false where /proc cannot tell (another system, a
// process gone or on another machine).
func CPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return Parse(string(b))
}

// Parse returns utime+stime of a /proc/PID/stat line.
func Parse(stat string) (time.Duration, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	// After the command: state is field 3 of proc(5), utime 14, stime 15.
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+k) * time.Second / userHZ, true
}

// RSS returns the resident set size of process pid in KiB; false where
// /proc cannot tell.
func RSS(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	return StatusKB(string(b), "VmRSS")
}

// StatusKB returns the value of a "Field:   123 kB" line of a
// /proc/PID/status file.
func StatusKB(status, field string) (int64, bool) {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}
