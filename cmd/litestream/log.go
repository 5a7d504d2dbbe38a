package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
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
// "json", with repeated errors rate-limited (rateLimitHandler). Level and
// type were validated with the configuration.
func newLogger(w io.Writer, level, typ string) *slog.Logger {
	lvl, err := parseLogLevel(level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(typ, "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newRateLimitHandler(h, errorRepeatWindow, nil))
}

// errorRepeatWindow is how long an error line suppresses identical ones.
const errorRepeatWindow = time.Minute

// rateLimitHandler passes every record through, except error records that
// repeat one logged less than errorRepeatWindow ago (same message, level and
// attributes): those are counted, and the next line let through after the
// window carries "repeated" with the number of lines left out. A replica
// that stays unreachable then logs one line a minute, not one per sync.
type rateLimitHandler struct {
	next   slog.Handler
	prefix string // the attributes and groups added with WithAttrs/WithGroup
	state  *rateLimitState
}

type rateLimitState struct {
	mu     sync.Mutex
	now    func() time.Time
	window time.Duration
	seen   map[string]*repeat
}

type repeat struct {
	last       time.Time
	suppressed int
}

func newRateLimitHandler(next slog.Handler, window time.Duration, now func() time.Time) *rateLimitHandler {
	if now == nil {
		now = time.Now
	}
	return &rateLimitHandler{next: next, state: &rateLimitState{now: now, window: window, seen: map[string]*repeat{}}}
}

func (h *rateLimitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *rateLimitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return h.next.Handle(ctx, r)
	}
	var key strings.Builder
	key.WriteString(h.prefix)
	key.WriteString("\x00")
	key.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		key.WriteString("\x00")
		key.WriteString(a.String())
		return true
	})
	s := h.state
	s.mu.Lock()
	now := s.now()
	rep, ok := s.seen[key.String()]
	if ok && now.Sub(rep.last) < s.window {
		rep.suppressed++
		s.mu.Unlock()
		return nil
	}
	n := 0
	if ok {
		n = rep.suppressed
	}
	s.seen[key.String()] = &repeat{last: now}
	// Forget old keys so that a stream of distinct errors cannot grow the
	// map without bound.
	if len(s.seen) > 1000 {
		for k, v := range s.seen {
			if now.Sub(v.last) >= s.window {
				delete(s.seen, k)
			}
		}
	}
	s.mu.Unlock()
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", n))
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	p := h.prefix
	for _, a := range attrs {
		p += "\x00" + a.String()
	}
	return &rateLimitHandler{next: h.next.WithAttrs(attrs), prefix: p, state: h.state}
}

func (h *rateLimitHandler) WithGroup(name string) slog.Handler {
	return &rateLimitHandler{next: h.next.WithGroup(name), prefix: h.prefix + "\x00group=" + name, state: h.state}
}
