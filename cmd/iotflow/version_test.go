package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOutput(t *testing.T) {
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/iotflow/iotflow", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "CGO_ENABLED", Value: "0"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-11-29T14:05:09Z"},
			{Key: "vcs.modified", Value: "false"},
		},
	}
	platform := "go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	for _, tc := range []struct {
		name, stamped string
		bi            *debug.BuildInfo
		want          string
	}{
		{"ldflags wins", "v2.0.0", bi, "iotflow v2.0.0\n" + platform +
			"CGO_ENABLED: 0\nvcs.revision: 0123456789abcdef\nvcs.time: 2026-11-29T14:05:09Z\nvcs.modified: false\n"},
		{"module version without ldflags", "dev", bi, "iotflow v1.4.0\n" + platform +
			"CGO_ENABLED: 0\nvcs.revision: 0123456789abcdef\nvcs.time: 2026-11-29T14:05:09Z\nvcs.modified: false\n"},
		{"devel build", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "iotflow dev\n" + platform},
		{"no build info", "dev", nil, "iotflow dev\n" + platform},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeVersion(&b, tc.stamped, tc.bi)
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	if err := run(t.Context(), []string{"iotflow", "version"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("version: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "iotflow ") || !strings.Contains(out.String(), "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("version printed:\n%s", out.String())
	}
}
