package main

// The YAML configuration's types: every key of Litestream v0.5.18's config
// structs (its cmd/litestream/main.go, internal.LoggingConfig and
// litestream.SocketConfig), with the same names and meaning. Parsing and
// validation are in config_parse.go; the older type/path replica form in
// config_legacy.go; directory replication in config_dir.go.

import (
	"fmt"
	"time"

	"github.com/litestream-go/litestream/internal/userinput"
	"gopkg.in/yaml.v3"
)

// DefaultConfigPath is where the configuration is read from when neither
// -config nor LITESTREAM_CONFIG names a file (the same as Litestream's).
const DefaultConfigPath = "/etc/litestream.yml"

// Config is the YAML configuration file.
type Config struct {
	// Global replica settings: defaults for every database's replica.
	ReplicaSettings `yaml:",inline"`

	DBs     []*DBConfig   `yaml:"dbs"`
	Logging LoggingConfig `yaml:"logging"`

	// Addr serves Prometheus metrics at /metrics. It is taken literally,
	// as by Litestream: ":9090" listens on every interface; unset is off.
	Addr   string       `yaml:"addr"`
	Socket SocketConfig `yaml:"socket"`
	Exec   string       `yaml:"exec"`
	// HeartbeatURL is fetched (GET) every HeartbeatInterval (default 5m,
	// at least 1m) while every database replicates successfully.
	HeartbeatURL         string         `yaml:"heartbeat-url"`
	HeartbeatInterval    *time.Duration `yaml:"heartbeat-interval"`
	ShutdownSyncTimeout  *time.Duration `yaml:"shutdown-sync-timeout"`  // default 30s; 0 skips the retries
	ShutdownSyncInterval *time.Duration `yaml:"shutdown-sync-interval"` // default 500ms
	// ShutdownTimeout bounds the whole shutdown (default 30s). Litestream
	// reads it leniently: a value that is not a positive duration is
	// logged and the default kept.
	ShutdownTimeout any `yaml:"shutdown-timeout"`

	// MCPAddr serves a Model Context Protocol endpoint (host defaults to
	// 127.0.0.1).
	MCPAddr string `yaml:"mcp-addr"`

	// Compaction levels 1..8, level-9 snapshots and retention, applied to
	// every database (see maintenance.go; defaults as Litestream v0.5).
	Levels                   []*LevelConfig  `yaml:"levels"`
	Snapshot                 SnapshotConfig  `yaml:"snapshot"`
	L0Retention              *time.Duration  `yaml:"l0-retention"`
	L0RetentionCheckInterval *time.Duration  `yaml:"l0-retention-check-interval"`
	Retention                RetentionConfig `yaml:"retention"`
	// ConsistencyCheckInterval is how long the writer trusts what it knows
	// the replica holds before listing it again (this program's key, not
	// Litestream's; default 10m): an idle daemon lists once per interval.
	ConsistencyCheckInterval *time.Duration `yaml:"consistency-check-interval"`

	// Validation periodically checks that the replica restores (see
	// validate.go); VerifyCompaction checks each compaction's output for
	// TXID gaps and overlaps.
	Validation       ValidationConfig `yaml:"validation"`
	VerifyCompaction bool             `yaml:"verify-compaction"`

	// Path is the file the configuration was read from ("" when built from flags).
	Path string `yaml:"-"`
	// lines maps each key given ("dbs[0].replica.url") to its line.
	lines map[string]int
}

// LoggingConfig is the `logging:` section.
type LoggingConfig struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn, error (default info)
	Type   string `yaml:"type"`   // text (default), json or pretty
	Stderr bool   `yaml:"stderr"` // log to stderr instead of stdout (replicate)
	Source bool   `yaml:"source"` // add the source file:line to each record
}

// SocketConfig is the control-socket section: replicate serves Litestream's
// control API on the Unix socket at Path (default /var/run/litestream.sock)
// with file mode Permissions (default 0600).
type SocketConfig struct {
	Enabled     bool   `yaml:"enabled"`
	Path        string `yaml:"path"`
	Permissions uint32 `yaml:"permissions"`
}

// LevelConfig is one compaction level (levels[0] is level 1).
type LevelConfig struct {
	Interval time.Duration `yaml:"interval"`
}

// SnapshotConfig is the `snapshot:` section: how often a level-9 snapshot
// is written and how long snapshots are kept.
type SnapshotConfig struct {
	Interval  *time.Duration `yaml:"interval"`
	Retention *time.Duration `yaml:"retention"`
}

// RetentionConfig is the top-level `retention:` section; enabled: false
// deletes nothing remotely (e.g. when a bucket lifecycle rule does it).
type RetentionConfig struct {
	Enabled *bool `yaml:"enabled"`
}

// ValidationConfig is the `validation:` section.
type ValidationConfig struct {
	Interval *time.Duration `yaml:"interval"`
}

// DBConfig is one entry of `dbs:`: a database (path) or a directory of
// databases (dir with pattern).
type DBConfig struct {
	Path string `yaml:"path"`

	// Directory replication: every SQLite database under Dir whose file
	// name matches Pattern, in subdirectories too with Recursive; with
	// Watch, databases created later are picked up and removed ones
	// dropped while running. Each one replicates to the replica's path
	// plus its path relative to Dir.
	Dir       string `yaml:"dir"`
	Pattern   string `yaml:"pattern"`
	Recursive bool   `yaml:"recursive"`
	Watch     bool   `yaml:"watch"`

	// Snapshot settings given per database; Litestream applies them to
	// the whole daemon (differing values are an error).
	Snapshot SnapshotConfig `yaml:"snapshot"`

	// MetaPath is the local staging directory (default
	// <dir>/.<name>-litestream); MetaDir its base for the databases of a
	// directory entry.
	MetaPath *string `yaml:"meta-path"`
	MetaDir  *string `yaml:"meta-dir"`

	MonitorInterval    *time.Duration `yaml:"monitor-interval"`
	CheckpointInterval *time.Duration `yaml:"checkpoint-interval"`
	MinCheckpointPageN *int           `yaml:"min-checkpoint-page-count"`
	BusyTimeout        *time.Duration `yaml:"busy-timeout"`
	TruncatePageN      *int           `yaml:"truncate-page-n"`
	MaxSyncWALBytes    *int64         `yaml:"max-sync-wal-bytes"`

	// RestoreIfDBNotExists makes replicate restore a missing database from
	// its replica first.
	RestoreIfDBNotExists bool `yaml:"restore-if-db-not-exists"`

	Replica  *ReplicaConfig   `yaml:"replica"`
	Replicas []*ReplicaConfig `yaml:"replicas"` // legacy list form; at most one entry

	// MaxCheckpointPageN is Litestream v0.3's key; v0.5 has none like it.
	MaxCheckpointPageN *int `yaml:"max-checkpoint-page-count"`

	// global is the configuration this entry belongs to (set by Validate).
	global *Config
	// dirRel is, for a database found under a dir: entry, its path
	// relative to that directory.
	dirRel string
}

// ReplicaConfig is a database's `replica:` (or one item of legacy `replicas:`).
// A replica is given either as `url:` or as `type:` plus `path:` (and
// `bucket:` for object stores), as in Litestream.
type ReplicaConfig struct {
	ReplicaSettings `yaml:",inline"`

	URL  string `yaml:"url"`
	Type string `yaml:"type"`
	Path string `yaml:"path"`
	Name string `yaml:"name"` // deprecated in Litestream; names nothing

	// Litestream v0.3's replica keys; v0.5 moved them (see config_parse.go).
	Retention              *time.Duration `yaml:"retention"`
	RetentionCheckInterval *time.Duration `yaml:"retention-check-interval"`
	SnapshotInterval       *time.Duration `yaml:"snapshot-interval"`

	// global is the configuration's top-level settings, already copied
	// into ReplicaSettings (set by ParseConfig); it tells which settings
	// the replica set itself.
	global *ReplicaSettings
}

// ReplicaSettings can be set per replica or once at the top level as a
// default for all replicas (as in Litestream v0.5). Each backend uses the
// keys that apply to it; see ReplicaConfig.Replica.
type ReplicaSettings struct {
	SyncInterval       *time.Duration `yaml:"sync-interval"`
	ValidationInterval *time.Duration `yaml:"validation-interval"`
	// MaxSyncLTXFiles bounds the level-0 files one sync uploads; this
	// writer uploads at most one per sync, so every value holds.
	MaxSyncLTXFiles *int `yaml:"max-sync-ltx-files"`
	// AutoRecover: Litestream resets its local LTX state when it finds it
	// broken. This writer keeps no local LTX state beyond the file being
	// uploaded and snapshots whenever continuity is lost, either way.
	AutoRecover *bool `yaml:"auto-recover"`

	// Location, used to build a URL when `url:` is not given (bucket also
	// names the object store of a nats:// URL without one).
	Bucket    string `yaml:"bucket"`
	Host      string `yaml:"host"`       // sftp
	WebDAVURL string `yaml:"webdav-url"` // webdav

	// S3 and S3-compatible stores (endpoint also for abs and gs).
	AccessKeyID         string    `yaml:"access-key-id"`
	SecretAccessKey     string    `yaml:"secret-access-key"`
	Region              string    `yaml:"region"`
	Endpoint            string    `yaml:"endpoint"`
	ForcePathStyle      *bool     `yaml:"force-path-style"`
	SignPayload         *bool     `yaml:"sign-payload"`
	SignAcceptEncoding  *bool     `yaml:"sign-accept-encoding"`
	RequireContentMD5   *bool     `yaml:"require-content-md5"`
	PutObjectContentMD5 *bool     `yaml:"put-object-content-md5"`
	SkipVerify          bool      `yaml:"skip-verify"` // also webdavs
	StorageClass        string    `yaml:"storage-class"`
	PartSize            *ByteSize `yaml:"part-size"`
	Concurrency         *int      `yaml:"concurrency"`

	// S3 server-side encryption: customer-provided keys (SSE-C) or KMS.
	SSECustomerAlgorithm string `yaml:"sse-customer-algorithm"`
	SSECustomerKey       string `yaml:"sse-customer-key"`
	SSECustomerKeyPath   string `yaml:"sse-customer-key-path"`
	SSEKMSKeyID          string `yaml:"sse-kms-key-id"`

	// Azure Blob Storage.
	AccountName string `yaml:"account-name"`
	AccountKey  string `yaml:"account-key"`
	SASToken    string `yaml:"sas-token"`

	// SFTP (user and password also for webdav, password for nats).
	User             string `yaml:"user"`
	Password         string `yaml:"password"`
	KeyPath          string `yaml:"key-path"`
	HostKey          string `yaml:"host-key"`
	ConcurrentWrites *bool  `yaml:"concurrent-writes"`

	// WebDAV.
	WebDAVUsername string `yaml:"webdav-username"`
	WebDAVPassword string `yaml:"webdav-password"`

	// NATS (timeout also for sftp and webdav).
	JWT           string         `yaml:"jwt"`
	Seed          string         `yaml:"seed"`
	Creds         string         `yaml:"creds"`
	NKey          string         `yaml:"nkey"`
	Username      string         `yaml:"username"`
	Token         string         `yaml:"token"`
	TLS           *bool          `yaml:"tls"`
	RootCAs       []string       `yaml:"root-cas"`
	ClientCert    string         `yaml:"client-cert"`
	ClientKey     string         `yaml:"client-key"`
	MaxReconnects *int           `yaml:"max-reconnects"`
	ReconnectWait *time.Duration `yaml:"reconnect-wait"`
	Timeout       *time.Duration `yaml:"timeout"`

	// Age encrypts the replica client-side (Litestream v0.3's key; v0.5
	// refuses it): see encryption.go.
	Age AgeConfig `yaml:"age"`
}

// AgeConfig is the `age:` encryption section: public keys to encrypt to,
// and files of secret keys to decrypt with.
type AgeConfig struct {
	Identities []string `yaml:"identities"`
	Recipients []string `yaml:"recipients"`
}

// ByteSize is a size such as "5MiB", "10MB" or "1048576", parsed by the
// project's one size rule (internal/userinput.ParseSize, Litestream's:
// KB/MB/GB powers of 1000, KiB/MiB/GiB powers of 1024).
type ByteSize int64

// UnmarshalYAML parses a size with userinput.ParseSize.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := userinput.ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// humanBytes formats n as Litestream's status does (go-humanize's Bytes:
// SI units, "0 B", "32 kB", "4.1 MB").
func humanBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	sizes := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := 0
	v := float64(n)
	for v >= 1000 && e < len(sizes)-1 {
		v /= 1000
		e++
	}
	// Round to one decimal as go-humanize does (floor(x*10+0.5)/10).
	r := float64(int64(v*10+0.5)) / 10
	if r < 10 {
		return fmt.Sprintf("%.1f %s", r, sizes[e])
	}
	return fmt.Sprintf("%.0f %s", r, sizes[e])
}
