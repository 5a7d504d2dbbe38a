package main

import (
	"slices"
	"strings"
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
		!o.RetentionDisabled {
		t.Fatalf("options %+v", o)
	}
	if u := cfg.Unsupported(); len(u) != 0 {
		t.Fatalf("Unsupported() = %q", u)
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
	} {
		_, err := ParseConfig([]byte(tc.y+"dbs:\n  - path: /a.db\n    replica: {url: file:///b}\n"), true, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want one naming %s", tc.y, err, tc.err)
		}
	}
}
