package main

// Validation of a parsed configuration: values that cannot work, and keys
// this build cannot honour. Litestream v0.5.18 reads its file leniently
// (unknown keys are ignored); here a misspelt key is an error with its line
// (config_parse.go), and so is a key whose setting would silently not take
// effect.

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// keyError is an error about a configuration key, naming its line when
// known: "line 12: dbs[0].replica.sign-payload: ...".
func (c *Config) keyError(key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line, ok := c.lines[key]; ok {
		return fmt.Errorf("line %d: %s: %s", line, key, msg)
	}
	return fmt.Errorf("%s: %s", key, msg)
}

// Validate reports settings that cannot work and keys that cannot be
// honoured: the top-level keys, then each database and its replicas, in
// file order (the first problem is reported).
func (c *Config) Validate() error {
	if c.lines == nil {
		c.lines = map[string]int{}
	}
	if err := c.validateTopLevel(); err != nil {
		return err
	}
	if err := c.checkReplicaSettings("", &c.ReplicaSettings, ""); err != nil {
		return err
	}
	if err := c.applyDBSnapshots(); err != nil {
		return err
	}
	seen := make(map[string]int) // database path -> its index in dbs
	for i, db := range c.DBs {
		db.global = c // for the settings that apply to every database
		if err := c.validateDB(fmt.Sprintf("dbs[%d]", i), i, db, seen); err != nil {
			return err
		}
	}
	return nil
}

// validateTopLevel checks the keys outside dbs that have a value range.
func (c *Config) validateTopLevel() error {
	switch strings.ToLower(c.Logging.Type) {
	case "", "text", "json", "pretty":
	default:
		return c.keyError("logging.type", "must be text, json or pretty, not %q", c.Logging.Type)
	}
	if _, err := parseLogLevel(c.Logging.Level); err != nil {
		return c.keyError("logging.level", "%v", err)
	}
	if err := c.validateMaintenance(); err != nil {
		return err
	}
	if c.HeartbeatURL != "" && !strings.HasPrefix(c.HeartbeatURL, "http://") && !strings.HasPrefix(c.HeartbeatURL, "https://") {
		return c.keyError("heartbeat-url", "must be an http:// or https:// URL")
	}
	if c.HeartbeatInterval != nil && *c.HeartbeatInterval <= 0 {
		return c.keyError("heartbeat-interval", "must be at least 1m (got %s)", *c.HeartbeatInterval)
	}
	if c.ShutdownSyncTimeout != nil && *c.ShutdownSyncTimeout < 0 {
		return c.keyError("shutdown-sync-timeout", "must be >= 0 (got %s)", *c.ShutdownSyncTimeout)
	}
	if c.ShutdownSyncInterval != nil && *c.ShutdownSyncInterval <= 0 {
		return c.keyError("shutdown-sync-interval", "must be greater than 0 (got %s)", *c.ShutdownSyncInterval)
	}
	if c.Validation.Interval != nil && *c.Validation.Interval <= 0 {
		return c.keyError("validation.interval", "must be greater than 0 (got %s)", *c.Validation.Interval)
	}
	return nil
}

// validateDB checks dbs[i] (where) and its replicas; seen records the
// database paths listed so far, to refuse one listed twice.
func (c *Config) validateDB(where string, i int, db *DBConfig, seen map[string]int) error {
	if err := validateDBShape(where, db); err != nil {
		return err
	}
	if db.Pattern != "" {
		if _, err := filepath.Match(db.Pattern, "x"); err != nil {
			return c.keyError(where+".pattern", "%v", err)
		}
	}
	if db.Path != "" {
		if j, ok := seen[db.Path]; ok {
			return fmt.Errorf("%s: database %s is already listed as dbs[%d]", where, db.Path, j)
		}
		seen[db.Path] = i
	}
	if _, err := db.ReplicaConfig(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := c.validateDBKeys(where, db); err != nil {
		return err
	}
	for j, rc := range db.replicaConfigs() {
		rwhere := where + ".replica"
		if db.Replica == nil {
			rwhere = fmt.Sprintf("%s.replicas[%d]", where, j)
		}
		if err := c.validateReplica(rwhere, rc); err != nil {
			return err
		}
	}
	return nil
}

// validateDBShape checks that a database entry is one database (path) or
// one directory (dir, pattern) and uses only the keys of its kind.
func validateDBShape(where string, db *DBConfig) error {
	switch {
	case db.Path != "" && db.Dir != "":
		return fmt.Errorf("%s: cannot specify both 'path' and 'dir'", where)
	case db.Path == "" && db.Dir == "":
		return fmt.Errorf("%s: must specify either 'path' or 'dir'", where)
	case db.Dir != "" && db.Pattern == "":
		return fmt.Errorf("%s: 'pattern' is required when using 'dir'", where)
	case db.Watch && db.Dir == "":
		return fmt.Errorf("%s: 'watch' can only be enabled with a directory", where)
	case db.MetaDir != nil && db.Dir == "":
		return fmt.Errorf("%s: 'meta-dir' can only be used with a directory", where)
	case db.MetaPath != nil && db.MetaDir != nil:
		return fmt.Errorf("%s: cannot specify both 'meta-path' and 'meta-dir'", where)
	}
	return nil
}

// validateDBKeys checks a database's interval and WAL keys.
func (c *Config) validateDBKeys(where string, db *DBConfig) error {
	if db.MonitorInterval != nil && *db.MonitorInterval <= 0 {
		return c.keyError(where+".monitor-interval", "must be greater than 0 (got %s)", *db.MonitorInterval)
	}
	// As in Litestream v0.5.18: checkpoint-interval 0 turns time-based
	// checkpoints off, busy-timeout 0 waits for nothing,
	// truncate-page-n 0 keeps the default and below 0 turns it off.
	if db.BusyTimeout != nil && *db.BusyTimeout < 0 {
		return c.keyError(where+".busy-timeout", "must not be negative (got %s)", *db.BusyTimeout)
	}
	if db.MinCheckpointPageN != nil && *db.MinCheckpointPageN <= 0 {
		return c.keyError(where+".min-checkpoint-page-count", "must be greater than 0 (got %d)", *db.MinCheckpointPageN)
	}
	if db.MaxSyncWALBytes != nil && *db.MaxSyncWALBytes < 0 {
		return c.keyError(where+".max-sync-wal-bytes", "must not be negative (got %d)", *db.MaxSyncWALBytes)
	}
	if db.MaxCheckpointPageN != nil {
		return c.keyError(where+".max-checkpoint-page-count",
			"is a Litestream v0.3 key that v0.5 no longer has; use truncate-page-n (a TRUNCATE checkpoint once the WAL holds that many pages)")
	}
	return nil
}

// validateReplica checks one replica of a database (rwhere names it).
func (c *Config) validateReplica(rwhere string, rc *ReplicaConfig) error {
	if rc.SyncInterval != nil && *rc.SyncInterval <= 0 {
		return c.keyError(rwhere+".sync-interval", "must be greater than 0 (got %s)", *rc.SyncInterval)
	}
	for _, v3 := range []struct {
		key, instead string
		v            *time.Duration
	}{
		{"retention", "snapshot.retention (top level)", rc.Retention},
		{"retention-check-interval", "l0-retention-check-interval (top level)", rc.RetentionCheckInterval},
		{"snapshot-interval", "snapshot.interval (top level)", rc.SnapshotInterval},
	} {
		if v3.v != nil {
			return c.keyError(rwhere+"."+v3.key, "is a Litestream v0.3 replica key that v0.5 no longer reads; use %s", v3.instead)
		}
	}
	ref, err := rc.Replica()
	if err != nil {
		return fmt.Errorf("%s: %w", rwhere, err)
	}
	if err := c.checkReplicaSettings(rwhere, &rc.ReplicaSettings, schemeOf(ref.URL)); err != nil {
		return err
	}
	return c.checkSSE(rwhere, rc, schemeOf(ref.URL))
}

// applyDBSnapshots applies snapshot settings given on a database to the
// whole daemon, as Litestream does (one snapshot schedule for all): unless
// the top level sets them, and an error when two databases disagree.
func (c *Config) applyDBSnapshots() error {
	type agreed struct {
		key, plural string
		get         func(*DBConfig) *time.Duration
		top         **time.Duration // the top-level setting
		v           *time.Duration  // the databases' value so far, and where from
		db          string
	}
	keys := []*agreed{
		{key: "interval", plural: "intervals", get: func(db *DBConfig) *time.Duration { return db.Snapshot.Interval }, top: &c.Snapshot.Interval},
		{key: "retention", plural: "retentions", get: func(db *DBConfig) *time.Duration { return db.Snapshot.Retention }, top: &c.Snapshot.Retention},
	}
	for i, db := range c.DBs {
		if db == nil {
			continue
		}
		for _, k := range keys {
			v := k.get(db)
			switch {
			case v == nil:
				continue
			case *v <= 0:
				return c.keyError(fmt.Sprintf("dbs[%d].snapshot.%s", i, k.key), "must be greater than 0 (got %s)", *v)
			case k.v != nil && *k.v != *v:
				return fmt.Errorf("conflicting database snapshot %s: %s has %v, dbs[%d] has %v", k.plural, k.db, *k.v, i, *v)
			}
			k.v, k.db = v, fmt.Sprintf("dbs[%d]", i)
		}
	}
	for _, k := range keys {
		if *k.top == nil {
			*k.top = k.v
		}
	}
	return nil
}

// schemeOf returns the scheme of a replica URL ("" if it has none).
func schemeOf(u string) string {
	if i := strings.Index(u, "://"); i > 0 {
		return strings.ToLower(u[:i])
	}
	return ""
}

// checkReplicaSettings rejects the replica keys whose setting this build
// cannot carry out for the replica's backend (scheme; "" for the global
// defaults, which are checked for what applies everywhere). Keys meant for
// another backend are ignored, as Litestream ignores them.
func (c *Config) checkReplicaSettings(where string, rs *ReplicaSettings, scheme string) error {
	key := func(k string) string { return joinKey(where, k) }
	if _, err := parseAge(rs.Age); err != nil {
		return c.keyError(key("age"), "%v", err)
	}
	if rs.ValidationInterval != nil && *rs.ValidationInterval <= 0 {
		return c.keyError(key("validation-interval"), "must be greater than 0 (got %s)", *rs.ValidationInterval)
	}
	if rs.MaxSyncLTXFiles != nil && *rs.MaxSyncLTXFiles < 0 {
		return c.keyError(key("max-sync-ltx-files"), "must not be negative (got %d)", *rs.MaxSyncLTXFiles)
	}
	if scheme == "s3" && rs.SSECustomerKey != "" && rs.SSEKMSKeyID != "" {
		return c.keyError(key("sse-kms-key-id"), "cannot be used together with sse-customer-key (SSE-C)")
	}
	return nil
}

// checkSSE refuses server-side encryption keys that a replica sets itself
// but its backend cannot honour: only S3 has them, and ignoring them would
// upload unencrypted objects to a replica the user asked to encrypt (issue
// 13). Global keys are defaults for the replicas they apply to (S3 ones),
// as in Litestream, and are not an error on others.
func (c *Config) checkSSE(where string, rc *ReplicaConfig, scheme string) error {
	if scheme == "" || scheme == "s3" {
		return nil
	}
	own := rc.own()
	for _, k := range []struct{ name, v string }{
		{"sse-customer-key", own.SSECustomerKey}, {"sse-customer-key-path", own.SSECustomerKeyPath},
		{"sse-customer-algorithm", own.SSECustomerAlgorithm}, {"sse-kms-key-id", own.SSEKMSKeyID},
	} {
		if k.v != "" {
			return c.keyError(joinKey(where, k.name), "server-side encryption is only available on s3 replicas, not %s (use age: for client-side encryption)", scheme)
		}
	}
	return nil
}
