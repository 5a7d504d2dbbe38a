package main

import (
	"fmt"
	"time"

	"github.com/litestream-go/litestream/writer"
)

// validateMaintenance checks the levels, snapshot and retention keys.
func (c *Config) validateMaintenance() error {
	if len(c.Levels) > 8 {
		return fmt.Errorf("levels: at most 8 compaction levels (1..8), got %d", len(c.Levels))
	}
	for i, l := range c.Levels {
		if l == nil || l.Interval <= 0 {
			return fmt.Errorf("levels[%d].interval: must be greater than 0", i)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{
		{"snapshot.interval", c.Snapshot.Interval},
		{"snapshot.retention", c.Snapshot.Retention},
		{"l0-retention", c.L0Retention},
		{"l0-retention-check-interval", c.L0RetentionCheckInterval},
		{"consistency-check-interval", c.ConsistencyCheckInterval},
	} {
		if d.v != nil && *d.v <= 0 {
			return fmt.Errorf("%s: must be greater than 0 (got %s)", d.name, *d.v)
		}
	}
	return nil
}

// applyMaintenance sets the writer's compaction, snapshot and retention
// options from the configuration; unset keys keep the writer's defaults
// (Litestream v0.5's).
func (c *Config) applyMaintenance(o *writer.Options) {
	if c == nil {
		return
	}
	if c.Levels != nil {
		o.Levels = make([]time.Duration, 0, len(c.Levels))
		for _, l := range c.Levels {
			o.Levels = append(o.Levels, l.Interval)
		}
	}
	setFrom(&o.SnapshotInterval, c.Snapshot.Interval)
	setFrom(&o.SnapshotRetention, c.Snapshot.Retention)
	setFrom(&o.L0Retention, c.L0Retention)
	setFrom(&o.RetentionCheckInterval, c.L0RetentionCheckInterval)
	setFrom(&o.ConsistencyCheckInterval, c.ConsistencyCheckInterval)
	if c.Retention.Enabled != nil && !*c.Retention.Enabled {
		o.RetentionDisabled = true
	}
}
