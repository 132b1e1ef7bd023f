// Package logging sets up log/slog for IoTFlow: text or JSON, to stdout and
// to a log file rotated by size.
package logging

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Options configure New.
type Options struct {
	Level  slog.Level
	Format string // "text" or "json"
	// File is the log file; "" logs to out only.
	File string
	// MaxSizeMB and MaxBackups configure rotation (defaults 10 and 5).
	MaxSizeMB  int
	MaxBackups int
}

// New returns a logger writing to out and, when opts.File is set, to that
// file with rotation. Close the returned io.Closer on shutdown.
func New(out io.Writer, opts Options) (*slog.Logger, io.Closer, error) {
	var closer io.Closer = io.NopCloser(nil)
	w := out
	if opts.File != "" {
		if err := os.MkdirAll(filepath.Dir(opts.File), 0o750); err != nil {
			return nil, nil, err
		}
		if opts.MaxSizeMB <= 0 {
			opts.MaxSizeMB = 10
		}
		if opts.MaxBackups <= 0 {
			opts.MaxBackups = 5
		}
		lj := &lumberjack.Logger{Filename: opts.File, MaxSize: opts.MaxSizeMB, MaxBackups: opts.MaxBackups}
		// Fail at start, not on the first line, when the file cannot be written.
		if _, err := lj.Write(nil); err != nil {
			return nil, nil, err
		}
		w = io.MultiWriter(out, lj)
		closer = lj
	}
	ho := &slog.HandlerOptions{Level: opts.Level, ReplaceAttr: renameLevels}
	var h slog.Handler
	if opts.Format == "json" {
		h = slog.NewJSONHandler(w, ho)
	} else {
		h = slog.NewTextHandler(w, ho)
	}
	return slog.New(h), closer, nil
}

// renameLevels prints WARN as WARNING, the name the configuration uses.
func renameLevels(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l == slog.LevelWarn {
			a.Value = slog.StringValue("WARNING")
		}
	}
	return a
}
