package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(e env, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, e, args, "Usage: iotflow version\n\nPrints build information.\n"); err != nil {
		return helpOK(err)
	}
	bi, _ := debug.ReadBuildInfo()
	writeVersion(e.stdout, version, bi)
	return nil
}

// writeVersion prints the version, the Go toolchain and platform, and what
// the Go command recorded of the build (VCS revision, time, local changes;
// cgo). Without -ldflags the module version the Go command stamped from the
// VCS tag (as with 'go install ...@v1.2.3') stands in for "dev".
func writeVersion(w io.Writer, v string, bi *debug.BuildInfo) {
	if v == "dev" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(w, "iotflow %s\n", v)
	fmt.Fprintf(w, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi == nil {
		return
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "CGO_ENABLED":
			fmt.Fprintf(w, "%s: %s\n", s.Key, s.Value)
		}
	}
}
