package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// DefaultConfigPath is where the configuration is read from when neither
// -config nor LITESTREAM_CONFIG names a file (the same as Litestream's).
const DefaultConfigPath = "/etc/litestream.yml"

// Config is the YAML configuration file. Its shape and key names are those of
// Litestream v0.5 so that existing files load unchanged. Keys for features
// this implementation does not have yet are parsed (so such files load) and
// reported by Unsupported; replicate logs them as ignored.
type Config struct {
	// Global replica settings: defaults for every database's replica.
	ReplicaSettings `yaml:",inline"`

	DBs     []*DBConfig   `yaml:"dbs"`
	Logging LoggingConfig `yaml:"logging"`

	// Service settings (replicate): Prometheus metrics address (host
	// defaults to 127.0.0.1), control socket, subprocess, heartbeat and the
	// bounds of the final sync at shutdown.
	Addr   string       `yaml:"addr"`
	Socket SocketConfig `yaml:"socket"`
	Exec   string       `yaml:"exec"`
	// HeartbeatURL is fetched (GET) every HeartbeatInterval (default 5m)
	// while every database replicates successfully.
	HeartbeatURL         string         `yaml:"heartbeat-url"`
	HeartbeatInterval    *time.Duration `yaml:"heartbeat-interval"`
	ShutdownSyncTimeout  *time.Duration `yaml:"shutdown-sync-timeout"`  // default 30s
	ShutdownSyncInterval *time.Duration `yaml:"shutdown-sync-interval"` // default 500ms

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

	// Not supported yet (parsed, then ignored with a warning).
	Validation       ValidationConfig `yaml:"validation"`
	VerifyCompaction bool             `yaml:"verify-compaction"`

	// Path is the file the configuration was read from ("" when built from flags).
	Path string `yaml:"-"`
}

// LoggingConfig is the `logging:` section.
type LoggingConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error (default info)
	Type   string `yaml:"type"`   // text (default) or json
	Stderr bool   `yaml:"stderr"` // log to stderr instead of stdout (replicate)
}

// SocketConfig is the control-socket section: replicate serves its live
// state on the Unix socket at Path (default /var/run/litestream.sock) with
// file mode Permissions (default 0600); status reads it.
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

// ValidationConfig is the `validation:` section (not supported yet).
type ValidationConfig struct {
	Interval *time.Duration `yaml:"interval"`
}

// DBConfig is one entry of `dbs:`.
type DBConfig struct {
	Path               string         `yaml:"path"`
	MetaPath           string         `yaml:"meta-path"` // local staging directory for LTX files
	MonitorInterval    *time.Duration `yaml:"monitor-interval"`
	CheckpointInterval *time.Duration `yaml:"checkpoint-interval"`
	MinCheckpointPageN *int           `yaml:"min-checkpoint-page-count"`

	// RestoreIfDBNotExists makes replicate restore a missing database from
	// its replica first.
	RestoreIfDBNotExists bool `yaml:"restore-if-db-not-exists"`

	Replica  *ReplicaConfig   `yaml:"replica"`
	Replicas []*ReplicaConfig `yaml:"replicas"` // legacy list form; at most one entry

	// global is the configuration this entry belongs to (set by Validate).
	global *Config

	// Not supported yet.
	Dir                string         `yaml:"dir"`
	Pattern            string         `yaml:"pattern"`
	Recursive          bool           `yaml:"recursive"`
	Watch              bool           `yaml:"watch"`
	BusyTimeout        *time.Duration `yaml:"busy-timeout"`
	TruncatePageN      *int           `yaml:"truncate-page-n"`
	MaxCheckpointPageN *int           `yaml:"max-checkpoint-page-count"`
}

// ReplicaConfig is a database's `replica:` (or one item of legacy `replicas:`).
// A replica is given either as `url:` or as `type:` plus `path:` (and
// `bucket:` for object stores), as in Litestream.
type ReplicaConfig struct {
	ReplicaSettings `yaml:",inline"`

	URL  string `yaml:"url"`
	Type string `yaml:"type"`
	Path string `yaml:"path"`
	Name string `yaml:"name"` // legacy; ignored

	// Not supported yet.
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
	SyncInterval *time.Duration `yaml:"sync-interval"`

	// Location, used to build a URL when `url:` is not given (bucket also
	// names the object store of a nats:// URL without one).
	Bucket    string `yaml:"bucket"`
	Host      string `yaml:"host"`       // sftp
	WebDAVURL string `yaml:"webdav-url"` // webdav

	// S3 and S3-compatible stores (endpoint also for abs and gs).
	AccessKeyID     string    `yaml:"access-key-id"`
	SecretAccessKey string    `yaml:"secret-access-key"`
	Region          string    `yaml:"region"`
	Endpoint        string    `yaml:"endpoint"`
	ForcePathStyle  *bool     `yaml:"force-path-style"`
	SkipVerify      bool      `yaml:"skip-verify"` // also webdavs
	PartSize        *ByteSize `yaml:"part-size"`
	Concurrency     *int      `yaml:"concurrency"`

	// Azure Blob Storage.
	AccountName string `yaml:"account-name"`
	AccountKey  string `yaml:"account-key"`
	SASToken    string `yaml:"sas-token"`

	// SFTP (user and password also for webdav, password for nats).
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	KeyPath  string `yaml:"key-path"`
	HostKey  string `yaml:"host-key"`

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
	TLS           bool           `yaml:"tls"`
	RootCAs       []string       `yaml:"root-cas"`
	ClientCert    string         `yaml:"client-cert"`
	ClientKey     string         `yaml:"client-key"`
	MaxReconnects *int           `yaml:"max-reconnects"`
	ReconnectWait *time.Duration `yaml:"reconnect-wait"`
	Timeout       *time.Duration `yaml:"timeout"`

	// Not supported yet (parsed, then ignored with a warning).
	ValidationInterval   *time.Duration `yaml:"validation-interval"`
	AutoRecover          *bool          `yaml:"auto-recover"`
	SignPayload          *bool          `yaml:"sign-payload"`
	RequireContentMD5    *bool          `yaml:"require-content-md5"`
	SSECustomerAlgorithm string         `yaml:"sse-customer-algorithm"`
	SSECustomerKey       string         `yaml:"sse-customer-key"`
	SSECustomerKeyPath   string         `yaml:"sse-customer-key-path"`
	SSEKMSKeyID          string         `yaml:"sse-kms-key-id"`
	ConcurrentWrites     *bool          `yaml:"concurrent-writes"`
	Age                  AgeConfig      `yaml:"age"`
}

// AgeConfig is Litestream's (v0.3) encryption section; not supported.
type AgeConfig struct {
	Identities []string `yaml:"identities"`
	Recipients []string `yaml:"recipients"`
}

// ByteSize is a size such as "5MiB", "10MB" or "1048576".
type ByteSize int64

// UnmarshalYAML parses a size with an optional B/K/M/G/T suffix; KB/MB/GB
// are powers of 1000 and KiB/MiB/GiB powers of 1024.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses a human-readable byte size.
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1000, "kb": 1000, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q", s, unit)
	}
	return int64(f * mult), nil
}

// ErrConfigNotFound is returned (wrapped) when the configuration file does not exist.
var ErrConfigNotFound = errors.New("config file not found")

// ReadConfigFile reads and parses the configuration file at path. With
// expandEnv, $VAR and ${VAR} are replaced by getenv's values first.
func ReadConfigFile(path string, expandEnv bool, getenv func(string) string) (*Config, error) {
	buf, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrConfigNotFound, path)
	} else if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	cfg, err := ParseConfig(buf, expandEnv, getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig parses a configuration. Unknown keys are an error naming the
// key and its line; database paths are made absolute (with ~ expanded); the
// global replica settings are copied into each replica that does not set
// them. The result is validated.
func ParseConfig(buf []byte, expandEnv bool, getenv func(string) string) (*Config, error) {
	if expandEnv {
		buf = []byte(os.Expand(string(buf), func(key string) string {
			if key == "PID" {
				return strconv.Itoa(os.Getpid())
			}
			return getenv(key)
		}))
	}

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	cfg := &Config{}
	if root.Kind == 0 {
		return cfg, nil // empty file
	}
	if err := checkKeys(&root, reflect.TypeOf(cfg).Elem(), ""); err != nil {
		return nil, err
	}
	if err := root.Decode(cfg); err != nil {
		return nil, err
	}

	for i, db := range cfg.DBs {
		if db == nil {
			return nil, fmt.Errorf("dbs[%d]: empty entry", i)
		}
		if db.Path != "" {
			p, err := expandPath(db.Path)
			if err != nil {
				return nil, fmt.Errorf("dbs[%d].path: %w", i, err)
			}
			db.Path = p
		}
		if db.MetaPath != "" {
			p, err := expandPath(db.MetaPath)
			if err != nil {
				return nil, fmt.Errorf("dbs[%d].meta-path: %w", i, err)
			}
			db.MetaPath = p
		}
		for _, rc := range db.replicaConfigs() {
			rc.SetDefaults(&cfg.ReplicaSettings)
			rc.global = &cfg.ReplicaSettings
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkKeys walks the YAML tree alongside the Go type it will be decoded
// into and rejects any mapping key that has no field, so a misspelt key is an
// error that names the key and its line instead of a silently ignored setting.
func checkKeys(n *yaml.Node, t reflect.Type, where string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkKeys(c, t, where); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		if n.Alias != nil {
			return checkKeys(n.Alias, t, where)
		}
		return nil
	}

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(time.Time{}) {
			return nil // a type mismatch; Decode reports it with its line
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: its mapping belongs to this struct
				if err := checkKeys(v, t, where); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				if where == "" {
					return fmt.Errorf("line %d: unknown key %q", k.Line, k.Value)
				}
				return fmt.Errorf("line %d: unknown key %q in %s", k.Line, k.Value, where)
			}
			if err := checkKeys(v, ft, joinKey(where, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinKey(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// yamlFields maps each YAML key of struct type t (inline structs flattened)
// to the field's type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// SetDefaults copies into rs every setting that rs leaves unset and src sets.
func (rs *ReplicaSettings) SetDefaults(src *ReplicaSettings) {
	dst := reflect.ValueOf(rs).Elem()
	from := reflect.ValueOf(src).Elem()
	for i := 0; i < dst.NumField(); i++ {
		if dst.Field(i).IsZero() && !from.Field(i).IsZero() {
			dst.Field(i).Set(from.Field(i))
		}
	}
}

// replicaConfigs returns the database's replica configs, new form first.
func (db *DBConfig) replicaConfigs() []*ReplicaConfig {
	var out []*ReplicaConfig
	if db.Replica != nil {
		out = append(out, db.Replica)
	}
	for _, rc := range db.Replicas {
		if rc != nil {
			out = append(out, rc)
		}
	}
	return out
}

// ReplicaConfig returns the database's single replica: `replica:` or the one
// entry of the legacy `replicas:` list.
func (db *DBConfig) ReplicaConfig() (*ReplicaConfig, error) {
	switch rcs := db.replicaConfigs(); {
	case db.Replica != nil && len(db.Replicas) > 0:
		return nil, fmt.Errorf("database %s: cannot specify both 'replica' and 'replicas'", db.Path)
	case len(rcs) == 0:
		return nil, fmt.Errorf("database %s: no replica configured (add 'replica: {url: ...}')", db.Path)
	case len(rcs) > 1:
		return nil, fmt.Errorf("database %s: multiple replicas per database are not supported (Litestream v0.5 dropped them too)", db.Path)
	default:
		return rcs[0], nil
	}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	switch strings.ToLower(c.Logging.Type) {
	case "", "text", "json":
	default:
		return fmt.Errorf("logging.type: must be text or json, not %q", c.Logging.Type)
	}
	if _, err := parseLogLevel(c.Logging.Level); err != nil {
		return fmt.Errorf("logging.level: %w", err)
	}
	if err := c.validateMaintenance(); err != nil {
		return err
	}
	seen := make(map[string]int)
	for i, db := range c.DBs {
		db.global = c // for the settings that apply to every database
		if db.Path == "" && db.Dir == "" {
			return fmt.Errorf("dbs[%d]: 'path' is required", i)
		}
		if db.Path == "" {
			continue // dir: entries are not supported yet; replicate warns
		}
		if j, ok := seen[db.Path]; ok {
			return fmt.Errorf("dbs[%d]: database %s is already listed as dbs[%d]", i, db.Path, j)
		}
		seen[db.Path] = i
		if _, err := db.ReplicaConfig(); err != nil {
			return fmt.Errorf("dbs[%d]: %w", i, err)
		}
		for _, d := range []struct {
			name string
			v    *time.Duration
		}{{"monitor-interval", db.MonitorInterval}, {"checkpoint-interval", db.CheckpointInterval}} {
			if d.v != nil && *d.v <= 0 {
				return fmt.Errorf("dbs[%d].%s: must be greater than 0 (got %s)", i, d.name, *d.v)
			}
		}
		if db.MinCheckpointPageN != nil && *db.MinCheckpointPageN <= 0 {
			return fmt.Errorf("dbs[%d].min-checkpoint-page-count: must be greater than 0 (got %d)", i, *db.MinCheckpointPageN)
		}
		for _, rc := range db.replicaConfigs() {
			if rc.SyncInterval != nil && *rc.SyncInterval <= 0 {
				return fmt.Errorf("dbs[%d] replica sync-interval: must be greater than 0 (got %s)", i, *rc.SyncInterval)
			}
			if _, err := rc.Replica(); err != nil {
				return fmt.Errorf("dbs[%d] replica: %w", i, err)
			}
		}
	}
	return nil
}

// DBConfig returns the configuration of the database at path (made absolute
// first), or nil.
func (c *Config) DBConfig(path string) *DBConfig {
	p, err := expandPath(path)
	if err != nil {
		return nil
	}
	for _, db := range c.DBs {
		if db.Path == p {
			return db
		}
	}
	return nil
}

// ReplicaURL returns the replica's URL: `url:` as given, or one built from
// Litestream's older form: `type:` plus `path:` (file), `bucket:` (s3, gs,
// abs; with `account-name:` for abs), `host:` (sftp, with `user:`) or
// `webdav-url:` (webdav). A nats:// URL without a bucket gets `bucket:` as
// its path. Credentials never go into the URL; see Replica.
func (rc *ReplicaConfig) ReplicaURL() (string, error) {
	if rc.URL != "" {
		if rc.Path != "" {
			return "", fmt.Errorf("cannot specify both 'url' and 'path'")
		}
		if !isURL(rc.URL) {
			return "", fmt.Errorf("url %q is not a URL (expected scheme://...)", redactURL(rc.URL))
		}
		if rc.Bucket != "" && isNATSWithoutBucket(rc.URL) {
			return withBucketPath(rc.URL, rc.Bucket)
		}
		return rc.URL, nil
	}
	typ := rc.Type
	if typ == "" {
		typ = "file"
	}
	rel := "/" + strings.TrimPrefix(rc.Path, "/")
	switch typ {
	case "file":
		if rc.Path == "" {
			return "", fmt.Errorf("file replica needs 'url' or 'path'")
		}
		p, err := expandPath(rc.Path)
		if err != nil {
			return "", err
		}
		return fileURL(p), nil
	case "s3", "gs", "abs":
		if rc.Bucket == "" {
			return "", fmt.Errorf("%s replica needs 'url' or 'bucket'", typ)
		}
		u := url.URL{Scheme: typ, Host: rc.Bucket, Path: rel}
		if typ == "abs" && rc.AccountName != "" {
			u.User = url.User(rc.AccountName) // abs://ACCOUNT@CONTAINER/PATH
		}
		return u.String(), nil
	case "sftp":
		if rc.Host == "" {
			return "", fmt.Errorf("sftp replica needs 'url' or 'host'")
		}
		u := url.URL{Scheme: "sftp", Host: rc.Host, Path: rel}
		if rc.User != "" {
			u.User = url.User(rc.User)
		}
		return u.String(), nil
	case "webdav":
		if rc.WebDAVURL == "" {
			return "", fmt.Errorf("webdav replica needs 'url' or 'webdav-url'")
		}
		w, err := url.Parse(rc.WebDAVURL)
		if err != nil || w.Host == "" {
			return "", fmt.Errorf("webdav-url %q: want http://host[:port][/path] or https://...", redactURL(rc.WebDAVURL))
		}
		switch strings.ToLower(w.Scheme) {
		case "http":
			w.Scheme = "webdav"
		case "https":
			w.Scheme = "webdavs"
		default:
			return "", fmt.Errorf("webdav-url %q: want an http:// or https:// URL", redactURL(rc.WebDAVURL))
		}
		// The replica path is inside the server's base path, as in Litestream.
		w.Path = strings.TrimSuffix(w.Path, "/") + rel
		w.RawPath = ""
		return w.String(), nil
	default:
		return "", fmt.Errorf("replica type %q needs 'url' (only file, s3, gs, abs, sftp and webdav replicas can be given as type and location keys)", typ)
	}
}

// Unsupported lists, as "key (where)" strings, the keys that are set but not
// supported yet, so that replicate can warn that they are ignored.
func (c *Config) Unsupported() []string {
	var out []string
	add := func(where string, v any, names ...string) {
		rv := reflect.ValueOf(v).Elem()
		t := rv.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			for _, n := range names {
				if n == name && !rv.Field(i).IsZero() {
					out = append(out, joinKey(where, name))
				}
			}
		}
	}
	add("", c, "validation", "verify-compaction")
	add("", &c.ReplicaSettings, unsupportedReplicaSettings...)
	for i, db := range c.DBs {
		where := fmt.Sprintf("dbs[%d]", i)
		add(where, db, "dir", "pattern", "recursive", "watch", "busy-timeout", "truncate-page-n",
			"max-checkpoint-page-count")
		for _, rc := range db.replicaConfigs() {
			add(where+".replica", rc, "retention", "retention-check-interval", "snapshot-interval")
			// Global settings were copied into each replica; report only
			// those the replica set itself.
			own := rc.ReplicaSettings
			own.clearInherited(&c.ReplicaSettings)
			add(where+".replica", &own, unsupportedReplicaSettings...)
		}
	}
	return out
}

// unsupportedReplicaSettings are the ReplicaSettings keys this build parses
// but does not act on. The credential, location and tuning keys of the
// backends are supported (see ReplicaConfig.Replica).
var unsupportedReplicaSettings = []string{
	"validation-interval", "auto-recover", "sign-payload", "require-content-md5",
	"sse-customer-algorithm", "sse-customer-key", "sse-customer-key-path", "sse-kms-key-id",
	"concurrent-writes", "age",
}

// clearInherited zeroes the settings that equal the global ones, leaving
// what the replica set itself.
func (rs *ReplicaSettings) clearInherited(global *ReplicaSettings) {
	dst := reflect.ValueOf(rs).Elem()
	g := reflect.ValueOf(global).Elem()
	for i := 0; i < dst.NumField(); i++ {
		if reflect.DeepEqual(dst.Field(i).Interface(), g.Field(i).Interface()) {
			dst.Field(i).SetZero()
		}
	}
}

// expandPath makes p absolute, expanding a leading ~ to the home directory.
func expandPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", p, err)
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return filepath.Abs(p)
}
