package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/writer"
)

// TestClient counts each operation of a wrapped file replica: requests,
// bytes, errors, files by level and deletions.
func TestClient(t *testing.T) {
	ctx := context.Background()
	m := New()
	c := m.Client("/db", file.New(t.TempDir()))
	var put int64
	for i, spec := range []struct {
		level int
		min   ltx.TXID
		max   ltx.TXID
		pages int
	}{{9, 1, 1, 3}, {0, 1, 1, 3}, {0, 2, 2, 1}, {1, 1, 2, 3}} {
		data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: spec.min, MaxTXID: spec.max, Pages: spec.pages, Seed: uint64(i), Timestamp: time.Now()})
		put += int64(len(data))
		if _, err := c.WriteLTXFile(ctx, spec.level, spec.min, spec.max, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := c.LTXFiles(ctx, 0, 0)
	if err != nil || len(files) != 2 {
		t.Fatalf("LTXFiles = %d files, %v", len(files), err)
	}
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 10, 90)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, rc); err != nil || n != 90 {
		t.Fatalf("read %d, %v", n, err)
	}
	rc.Close()
	rc.Close() // counted once
	if _, err := c.OpenLTXFile(ctx, 0, 7, 7, 0, 0); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	if err := c.DeleteLTXFiles(ctx, files); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		got    float64
		expect float64
	}{
		{"PUT requests", value(t, m.requests.WithLabelValues("/db", "file", OpPut)), 4},
		{"PUT bytes", value(t, m.reqBytes.WithLabelValues("/db", "file", OpPut)), float64(put)},
		{"LIST requests", value(t, m.requests.WithLabelValues("/db", "file", OpList)), 1},
		{"GET requests", value(t, m.requests.WithLabelValues("/db", "file", OpGet)), 2},
		{"GET errors", value(t, m.reqErrors.WithLabelValues("/db", "file", OpGet)), 1},
		{"GET bytes", value(t, m.reqBytes.WithLabelValues("/db", "file", OpGet)), 90},
		{"DELETE requests", value(t, m.requests.WithLabelValues("/db", "file", OpDelete)), 1},
		{"deleted files", value(t, m.retentionFiles.WithLabelValues("/db")), 2},
		{"snapshots", value(t, m.snapshots.WithLabelValues("/db")), 1},
		{"compactions", value(t, m.compactions.WithLabelValues("/db")), 1},
		{"level-0 files", value(t, m.filesWritten.WithLabelValues("/db", "0")), 2},
	} {
		if tt.got != tt.expect {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.expect)
		}
	}

	// The storage's own counts: the file backend counts a directory read
	// as a LIST, an open as a GET, a write as a PUT, each file deleted a
	// DELETE. ListAll goes through the wrapper to the backend and lists
	// the 10 level directories.
	if _, err := remote.ListAll(ctx, c); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`litestream_storage_requests_total{db="/db",kind="PUT",type="file"} 4`,
		`litestream_storage_requests_total{db="/db",kind="LIST",type="file"} 11`,
		`litestream_storage_requests_total{db="/db",kind="GET",type="file"} 2`,
		`litestream_storage_requests_total{db="/db",kind="DELETE",type="file"} 2`,
		`litestream_storage_requests_total{db="/db",kind="HEAD",type="file"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	m.RemoveDB("/db")
	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), "litestream_storage_requests_total{") {
		t.Error("storage request counts remain after RemoveDB")
	}
}

// TestStatusGauges reads writer.Status at scrape time.
func TestStatusGauges(t *testing.T) {
	m := New()
	now := time.Now()
	st := writer.Status{TXID: 42, WALSize: 8192, LastSync: now.Add(-3 * time.Second), Commit: 10, PageSize: 4096, LastError: "boom"}
	m.AddDB("/db", func() writer.Status { return st })
	o := m.Observer("/db")
	o.SyncDone(10*time.Millisecond, nil)
	o.SyncDone(20*time.Millisecond, errors.New("x"))
	o.CheckpointDone(writer.CheckpointPassive, time.Millisecond, nil)
	o.CheckpointDone(writer.CheckpointRestart, time.Millisecond, nil)
	o.CheckpointDone(writer.CheckpointTruncate, time.Millisecond, errors.New("busy"))
	o.RetentionDone(writer.L0Census{Deleted: 3, NotCompacted: 2, TooRecent: 1})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`litestream_txid{db="/db"} 42`,
		`litestream_wal_bytes{db="/db"} 8192`,
		`litestream_db_bytes{db="/db"} 40960`,
		`litestream_last_sync_failed{db="/db"} 1`,
		`litestream_sync_total{db="/db"} 2`,
		`litestream_sync_errors_total{db="/db"} 1`,
		`litestream_checkpoint_total{db="/db"} 3`,
		// Litestream's names carry the mode of each checkpoint.
		`litestream_checkpoint_count{db="/db",mode="PASSIVE"} 1`,
		`litestream_checkpoint_count{db="/db",mode="RESTART"} 1`,
		`litestream_checkpoint_count{db="/db",mode="TRUNCATE"} 1`,
		`litestream_checkpoint_error_count{db="/db",mode="TRUNCATE"} 1`,
		`litestream_checkpoint_error_count{db="/db",mode="PASSIVE"} 0`,
		`litestream_l0_retention_files_total{db="/db",status="eligible"} 3`,
		`litestream_l0_retention_files_total{db="/db",status="not_compacted"} 2`,
		`litestream_l0_retention_files_total{db="/db",status="too_recent"} 1`,
		`litestream_sync_duration_seconds_count{db="/db"} 2`,
		`litestream_compaction_total{db="/db"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if lag := Lag(st, time.Time{}, now); lag != 3*time.Second {
		t.Errorf("Lag = %s, want 3s", lag)
	}
	if lag := Lag(writer.Status{}, now.Add(-time.Minute), now); lag != time.Minute {
		t.Errorf("Lag before the first sync = %s, want the time since start", lag)
	}
}

// value reads a counter's current value.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue()
}

// TestDashboardMetrics: every metric the Grafana dashboard in etc/ queries
// is one this package exports.
func TestDashboardMetrics(t *testing.T) {
	buf, err := os.ReadFile("../etc/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	m.AddDB("/db", func() writer.Status { return writer.Status{} })
	m.Observer("/db").SyncDone(0, nil)
	m.Observer("/db").CheckpointDone(writer.CheckpointPassive, 0, nil)
	c := m.Client("/db", file.New(t.TempDir()))
	_, _ = c.LTXFiles(context.Background(), 0, 0)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})
	if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	_ = c.DeleteAll(context.Background())
	_, _ = c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	used := regexp.MustCompile(`litestream_[a-z0-9_]+`).FindAllString(string(buf), -1)
	if len(used) < 10 {
		t.Fatalf("dashboard queries only %d metrics", len(used))
	}
	for _, name := range used {
		base := name
		for _, sfx := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, sfx)
		}
		if !have[base] {
			t.Errorf("dashboard queries %s, which is not exported", name)
		}
	}
}
