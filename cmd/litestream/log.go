package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// levelTrace is Litestream's TRACE level, below DEBUG.
const levelTrace = slog.LevelDebug - 4

// parseLogLevel maps Litestream's level names (case-insensitive; "" is
// info) to slog levels.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "trace":
		return levelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("unknown log level %q (use trace, debug, info, warn or error)", s)
	}
}

// newLogger builds the process logger: text by default, JSON when typ is
// "json", Litestream's compact "pretty" lines when "pretty"; with source,
// each record names its file:line. Repeated errors are rate-limited
// (rateLimitHandler). Level and type were validated with the configuration.
func newLogger(w io.Writer, level, typ string, source bool) *slog.Logger {
	lvl, err := parseLogLevel(level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl, AddSource: source, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey && a.Value.Any() == levelTrace {
			a.Value = slog.StringValue("TRACE")
		}
		return a
	}}
	var h slog.Handler
	switch strings.ToLower(typ) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "pretty":
		h = &prettyHandler{w: w, opts: opts, mu: &sync.Mutex{}}
	default:
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(newRateLimitHandler(h, errorRepeatWindow, nil))
}

// prettyHandler writes "15:04:05 INF message key=value ...", the layout of
// Litestream's pretty logs (without colours: they are for terminals, and
// logs are mostly read from files).
type prettyHandler struct {
	w      io.Writer
	opts   *slog.HandlerOptions
	mu     *sync.Mutex
	attrs  string
	prefix string // group prefix for keys
}

func (h *prettyHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level()
}

func (h *prettyHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if !r.Time.IsZero() {
		b.WriteString(r.Time.Format(time.TimeOnly))
		b.WriteByte(' ')
	}
	switch {
	case r.Level < slog.LevelDebug:
		b.WriteString("TRC")
	case r.Level < slog.LevelInfo:
		b.WriteString("DBG")
	case r.Level < slog.LevelWarn:
		b.WriteString("INF")
	case r.Level < slog.LevelError:
		b.WriteString("WRN")
	default:
		b.WriteString("ERR")
	}
	if h.opts.AddSource && r.PC != 0 {
		fs := runtime.CallersFrames([]uintptr{r.PC})
		f, _ := fs.Next()
		fmt.Fprintf(&b, " %s:%d", filepath.Base(f.File), f.Line)
	}
	b.WriteByte(' ')
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writePrettyAttr(&b, h.prefix, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func writePrettyAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writePrettyAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \"=") || v == "" {
		v = strconv.Quote(v)
	}
	fmt.Fprintf(b, " %s%s=%s", prefix, a.Key, v)
}

func (h *prettyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range attrs {
		writePrettyAttr(&b, h.prefix, a)
	}
	c := *h
	c.attrs += b.String()
	return &c
}

func (h *prettyHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix += name + "."
	return &c
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

// cmdLogger is the logger of the commands other than replicate: text on
// Stderr at $LOG_LEVEL.
func (m *Main) cmdLogger() *slog.Logger {
	return newLogger(m.Stderr, m.Getenv("LOG_LEVEL"), "text", false)
}
