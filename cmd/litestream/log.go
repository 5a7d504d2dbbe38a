package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// parseLogLevel maps Litestream's level names (case-insensitive; "" is info;
// trace is treated as debug) to slog levels.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("unknown log level %q (use debug, info, warn or error)", s)
	}
}

// newLogger builds the process logger: text by default, JSON when typ is
// "json". Level and type were validated with the configuration.
func newLogger(w io.Writer, level, typ string) *slog.Logger {
	lvl, err := parseLogLevel(level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if strings.EqualFold(typ, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
