package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-go/litestream/writer"
)

func TestConfigMaintenance(t *testing.T) {
	const y = `
levels:
  - interval: 10s
  - interval: 2m
snapshot: {interval: 12h, retention: 168h}
l0-retention: 1m
l0-retention-check-interval: 5s
consistency-check-interval: 3m
retention: {enabled: false}
dbs:
  - path: /a.db
    replica: {url: file:///backups/a}
`
	cfg, err := ParseConfig([]byte(y), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var o writer.Options
	cfg.DBs[0].global.applyMaintenance(&o)
	if !slices.Equal(o.Levels, []time.Duration{10 * time.Second, 2 * time.Minute}) || o.SnapshotInterval != 12*time.Hour ||
		o.SnapshotRetention != 168*time.Hour || o.L0Retention != time.Minute || o.RetentionCheckInterval != 5*time.Second ||
		!o.RetentionDisabled || o.ConsistencyCheckInterval != 3*time.Minute {
		t.Fatalf("options %+v", o)
	}

	// Unset keys keep the writer's defaults.
	cfg, err = ParseConfig([]byte("dbs:\n  - path: /a.db\n    replica: {url: file:///b}\n"), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	o = writer.Options{}
	cfg.DBs[0].global.applyMaintenance(&o)
	if o.Levels != nil || o.SnapshotInterval != 0 || o.RetentionDisabled {
		t.Fatalf("defaults overridden: %+v", o)
	}

	for _, tc := range []struct{ y, err string }{
		{"levels:\n  - interval: 0s\n", "levels[0].interval"},
		{"snapshot: {interval: -1h}\n", "snapshot.interval"},
		{"l0-retention: 0s\n", "l0-retention"},
		{"consistency-check-interval: 0s\n", "consistency-check-interval"},
	} {
		_, err := ParseConfig([]byte(tc.y+"dbs:\n  - path: /a.db\n    replica: {url: file:///b}\n"), true, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want one naming %s", tc.y, err, tc.err)
		}
	}
}

// TestReplicate_Maintenance: replicate with short levels and snapshot
// settings compacts and snapshots (deletion waits for the writer's one-minute
// grace period, so it is tested in package writer), and the replica still
// restores the database.
func TestReplicate_Maintenance(t *testing.T) {
	dir, dbPath, replica, app := appDir(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`levels:
  - interval: 1s
snapshot: {interval: 2s, retention: 2s}
l0-retention: 500ms
l0-retention-check-interval: 200ms
dbs:
  - path: %s
    monitor-interval: 20ms
    replica: {url: 'file://%s', sync-interval: 50ms}
`, dbPath, replica))
	d := startDaemon(t, "-config", cfg)
	exists := func(level int, name string) bool {
		_, err := os.Stat(filepath.Join(replica, "ltx", fmt.Sprint(level), name))
		return err == nil
	}
	count := func(level int) int { return countLTX(filepath.Join(replica, "ltx", fmt.Sprint(level))) }
	n := 0
	waitFor(t, "compaction and a scheduled snapshot", 20*time.Second, func() bool {
		n++
		if _, err := app.Exec(`INSERT INTO t(v) VALUES (?)`, strings.Repeat("x", 100+n%50)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // pacing of the write load, not a synchronization
		// Two scheduled snapshots; the first sync's full copy is at level
		// 0 only (the first snapshot waits one interval after it).
		return count(1) > 0 && count(9) >= 2 && exists(0, "0000000000000001-0000000000000001.ltx")
	})
	d.sigs <- syscall.SIGTERM
	d.mustExit(0)
	out := filepath.Join(dir, "restored.db")
	restoreTo(t, replica, out)
	if got, want := queryString(t, out, "select count(*) from t"), fmt.Sprint(n); got != want {
		t.Fatalf("restored %s rows, wrote %s", got, want)
	}
}
