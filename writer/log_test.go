package writer

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// logRecord is one captured log line: its level, message and attributes
// (values as text).
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// captureHandler keeps every record; handlers derived with WithAttrs share
// the records.
type captureHandler struct {
	mu    *sync.Mutex
	recs  *[]logRecord
	attrs []slog.Attr
}

func newCapture() *captureHandler {
	return &captureHandler{mu: new(sync.Mutex), recs: new([]logRecord)}
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	cp := *h
	cp.attrs = append(slices.Clone(h.attrs), as...)
	return &cp
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

// take returns the records with message msg logged since the last take of
// any message, and forgets all records up to now.
func (h *captureHandler) take(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	*h.recs = nil
	return out
}

// TestLogLines: a sync that uploads logs one debug line (TXID, pages, size,
// duration); a snapshot (level 0 or 9), a compaction and a retention
// deletion log one info line each (level, TXID range, size, duration).
func TestLogLines(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	h := newCapture()
	opts := eagerRetention(e.opts(), 1)
	opts.Logger = slog.New(h)
	// The first sync's level-0 file counts as a snapshot for retention;
	// past this retention it goes once the level-9 snapshot exists.
	opts.SnapshotRetention = time.Nanosecond
	d := e.open(opts)
	h.take("")

	// one checks that recs is one line at level with the attributes want
	// (a value "*" only has to be present) and a duration.
	one := func(what string, recs []logRecord, level slog.Level, want map[string]string) {
		t.Helper()
		if len(recs) != 1 {
			t.Fatalf("%s: %d lines, want 1: %+v", what, len(recs), recs)
		}
		r := recs[0]
		if r.level != level {
			t.Errorf("%s: level %v, want %v", what, r.level, level)
		}
		if _, err := time.ParseDuration(r.attrs["duration"]); err != nil {
			t.Errorf("%s: duration %q: %v", what, r.attrs["duration"], err)
		}
		for k, v := range want {
			got, ok := r.attrs[k]
			if !ok || (v != "*" && got != v) || (v == "*" && (got == "" || got == "0")) {
				t.Errorf("%s: %s = %q (present %v), want %q; record %+v", what, k, got, ok, v, r.attrs)
			}
		}
	}

	e.insertSync(d, 20, 500)
	one("first sync (a snapshot)", h.take("snapshot uploaded"), slog.LevelInfo,
		map[string]string{"level": "0", "min_txid": "0000000000000001", "max_txid": "0000000000000001", "size": "*", "pages": "*"})

	e.insertSync(d, 5, 500)
	one("sync", h.take("synced"), slog.LevelDebug,
		map[string]string{"txid": "0000000000000002", "pages": "*", "size": "*"})
	e.sync(d) // nothing new: no line
	if recs := h.take("synced"); len(recs) != 0 {
		t.Errorf("a sync without changes logged %+v", recs)
	}

	// Level 1 starts after the first sync's full file (levelCursor).
	if _, err := d.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	one("compaction", h.take("compacted"), slog.LevelInfo,
		map[string]string{"level": "1", "min_txid": "0000000000000002", "max_txid": "0000000000000002", "size": "*", "inputs": "1"})

	if _, err := d.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	one("snapshot", h.take("snapshot uploaded"), slog.LevelInfo,
		map[string]string{"level": "9", "min_txid": "0000000000000001", "max_txid": "0000000000000002", "size": "*", "pages": "*"})

	del, err := d.EnforceRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := h.take("retention deleted")
	levels := map[int]bool{}
	for _, f := range del {
		levels[f.Level] = true
	}
	if len(del) == 0 || len(recs) != len(levels) {
		t.Fatalf("retention deleted %d files in %d levels and logged %+v", len(del), len(levels), recs)
	}
	for _, r := range recs {
		if r.level != slog.LevelInfo || r.attrs["files"] == "" || r.attrs["min_txid"] == "" || r.attrs["size"] == "" || r.attrs["duration"] == "" {
			t.Errorf("retention line %+v", r)
		}
	}
}
