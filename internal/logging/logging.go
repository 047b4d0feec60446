// Package logging opens ratchet's log: JSON lines (log/slog) appended to the
// netconf's logFile at its logLevel. Logs never go to stdout, which carries
// the CNI Result.
package logging

import (
	"io"
	"log/slog"
	"os"
)

// Open returns a logger writing to file at level, and a func closing it.
// An empty file discards the logs; a file that cannot be opened logs to
// stderr (which the runtime records) and says so.
func Open(file, level string) (*slog.Logger, func()) {
	if file == "" {
		return slog.New(slog.DiscardHandler), func() {}
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return New(os.Stderr, level).With("logFileError", err.Error()), func() {}
	}
	return New(f, level), func() { f.Close() }
}

// New returns a JSON logger writing to w at level (debug, info, warn or
// error; anything else is info), tagged with the process ID. Each key
// appears once per line (see uniqueKeys).
func New(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(newUniqueKeys(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))).With("pid", os.Getpid())
}
