package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/writer"
	"gopkg.in/yaml.v3"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig_Errors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings of the error
	}{
		{
			name:    "unknown top-level key",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: file:///b}\nbogus: 1\n",
			wantErr: []string{"line 4", `unknown key "bogus"`},
		},
		{
			name:    "unknown db key names the entry",
			yaml:    "dbs:\n  - path: /a.db\n    monitor-intervall: 1s\n    replica: {url: file:///b}\n",
			wantErr: []string{"line 3", `unknown key "monitor-intervall"`, "dbs[0]"},
		},
		{
			name:    "unknown replica key",
			yaml:    "dbs:\n  - path: /a.db\n    replica:\n      url: file:///b\n      sync-intervall: 1s\n",
			wantErr: []string{"line 5", `unknown key "sync-intervall"`, "dbs[0].replica"},
		},
		{
			name:    "unknown key in legacy replicas list",
			yaml:    "dbs:\n  - path: /a.db\n    replicas:\n      - url: file:///b\n        colour: red\n",
			wantErr: []string{"line 5", `unknown key "colour"`, "dbs[0].replicas[0]"},
		},
		{
			name:    "unknown logging key",
			yaml:    "logging:\n  level: info\n  format: json\n",
			wantErr: []string{"line 3", `unknown key "format"`, "logging"},
		},
		{
			name:    "bad duration",
			yaml:    "dbs:\n  - path: /a.db\n    monitor-interval: soon\n    replica: {url: file:///b}\n",
			wantErr: []string{"line 3"},
		},
		{
			name:    "both replica and replicas",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: file:///b}\n    replicas: [{url: file:///c}]\n",
			wantErr: []string{"both 'replica' and 'replicas'"},
		},
		{
			name:    "two legacy replicas",
			yaml:    "dbs:\n  - path: /a.db\n    replicas: [{url: file:///b}, {url: file:///c}]\n",
			wantErr: []string{"multiple replicas"},
		},
		{
			name:    "no replica",
			yaml:    "dbs:\n  - path: /a.db\n",
			wantErr: []string{"no replica configured"},
		},
		{
			name:    "missing path",
			yaml:    "dbs:\n  - replica: {url: file:///b}\n",
			wantErr: []string{"dbs[0]", "must specify either 'path' or 'dir'"},
		},
		{
			name:    "duplicate database",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: file:///b}\n  - path: /a.db\n    replica: {url: file:///c}\n",
			wantErr: []string{"already listed"},
		},
		{
			name:    "bad logging type",
			yaml:    "logging: {type: xml}\n",
			wantErr: []string{"logging.type"},
		},
		{
			name:    "bad logging level",
			yaml:    "logging: {level: loud}\n",
			wantErr: []string{"logging.level", "loud"},
		},
		{
			name:    "zero sync interval",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: file:///b, sync-interval: 0s}\n",
			wantErr: []string{"sync-interval", "greater than 0"},
		},
		{
			name:    "url and path",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: file:///b, path: /c}\n",
			wantErr: []string{"both 'url' and 'path'"},
		},
		{
			name:    "url without scheme",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: /backups/a}\n",
			wantErr: []string{"not a URL"},
		},
		{
			name:    "invalid yaml",
			yaml:    "dbs: [\n",
			wantErr: []string{"yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml), true, env(nil))
			if err == nil {
				t.Fatalf("ParseConfig succeeded, want error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseConfig_Values(t *testing.T) {
	const full = `
sync-interval: 5s
logging:
  level: debug
  type: json
  stderr: true
dbs:
  - path: /data/app.db
    meta-path: /var/lib/litestream/app
    monitor-interval: 250ms
    checkpoint-interval: 2m
    min-checkpoint-page-count: 500
    restore-if-db-not-exists: true
    replica:
      url: s3://bucket/app?endpoint=http://127.0.0.1:9000
  - path: /data/other.db
    replica:
      url: file:///backups/other
      sync-interval: 100ms
`
	cfg, err := ParseConfig([]byte(full), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logging != (LoggingConfig{Level: "debug", Type: "json", Stderr: true}) {
		t.Errorf("logging = %+v", cfg.Logging)
	}
	if len(cfg.DBs) != 2 {
		t.Fatalf("got %d dbs", len(cfg.DBs))
	}
	a := cfg.DBs[0]
	if a.Path != "/data/app.db" || a.MetaPath == nil || *a.MetaPath != "/var/lib/litestream/app" ||
		*a.MonitorInterval != 250*time.Millisecond || *a.CheckpointInterval != 2*time.Minute ||
		*a.MinCheckpointPageN != 500 || !a.RestoreIfDBNotExists {
		t.Errorf("dbs[0] = %+v", a)
	}
	// The global sync-interval is the default; a replica's own wins.
	if got := *a.Replica.SyncInterval; got != 5*time.Second {
		t.Errorf("dbs[0] sync-interval = %s, want the global 5s", got)
	}
	if got := *cfg.DBs[1].Replica.SyncInterval; got != 100*time.Millisecond {
		t.Errorf("dbs[1] sync-interval = %s, want its own 100ms", got)
	}
	if u, _ := a.Replica.ReplicaURL(); u != "s3://bucket/app?endpoint=http://127.0.0.1:9000" {
		t.Errorf("dbs[0] url = %q", u)
	}
	if cfg.DBConfig("/data/other.db") != cfg.DBs[1] || cfg.DBConfig("/data/none.db") != nil {
		t.Error("DBConfig lookup by path failed")
	}
}

// TestWriterOptions_CheckpointKeys: the WAL keys reach the writer.
func TestWriterOptions_CheckpointKeys(t *testing.T) {
	const y = `
dbs:
  - path: /data/app.db
    checkpoint-interval: 2m
    min-checkpoint-page-count: 500
    truncate-page-n: 20000
    busy-timeout: 3s
    replica: {url: file:///b}
`
	cfg, err := ParseConfig([]byte(y), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cfg: cfg, args: &replicateArgs{}}
	o := d.writerOptions(cfg.DBs[0], cfg.DBs[0].Replica)
	if o.CheckpointInterval != 2*time.Minute || o.MinCheckpointPageN != 500 || o.TruncatePageN != 20000 || o.BusyTimeout != 3*time.Second {
		t.Errorf("writer options %+v", o)
	}
	// Litestream v0.5.18's zeros: truncate-page-n 0 is the default and
	// negative is off; checkpoint-interval 0 is off; busy-timeout 0 is no
	// wait (SQLite's busy_timeout=0).
	for _, tc := range []struct {
		yaml  string
		check func(o writer.Options) bool
	}{
		{"truncate-page-n: 0", func(o writer.Options) bool { return o.TruncatePageN == 0 }},
		{"truncate-page-n: -1", func(o writer.Options) bool { return o.TruncatePageN >= 1<<30 }},
		{"checkpoint-interval: 0s", func(o writer.Options) bool { return o.CheckpointInterval < 0 }},
		{"busy-timeout: 0s", func(o writer.Options) bool { return o.BusyTimeout > 0 && o.BusyTimeout.Milliseconds() == 0 }},
	} {
		cfg, err := ParseConfig([]byte("dbs:\n  - path: /a.db\n    "+tc.yaml+"\n    replica: {url: file:///b}\n"), true, env(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if o := d.writerOptions(cfg.DBs[0], cfg.DBs[0].Replica); !tc.check(o) {
			t.Errorf("%s: options %+v", tc.yaml, o)
		}
	}
}

func TestParseConfig_Defaults(t *testing.T) {
	cfg, err := ParseConfig([]byte("dbs:\n  - path: rel/app.db\n    replica: {url: file:///b}\n"), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.DBs[0]
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "rel/app.db"); db.Path != want {
		t.Errorf("relative path = %q, want absolute %q", db.Path, want)
	}
	// Unset settings stay nil so the writer's own defaults apply.
	if db.MonitorInterval != nil || db.CheckpointInterval != nil || db.MinCheckpointPageN != nil || db.Replica.SyncInterval != nil {
		t.Errorf("unset settings got values: %+v %+v", db, db.Replica)
	}
	if cfg.Logging != (LoggingConfig{}) {
		t.Errorf("logging = %+v, want zero (text, info)", cfg.Logging)
	}

	// An empty file is an empty configuration.
	if cfg, err := ParseConfig(nil, true, env(nil)); err != nil || len(cfg.DBs) != 0 {
		t.Errorf("empty config: %+v, %v", cfg, err)
	}
}

func TestParseConfig_ExpandEnv(t *testing.T) {
	const y = "dbs:\n  - path: ${DATA}/app.db\n    replica:\n      url: s3://$BUCKET/app\n"
	vars := env(map[string]string{"DATA": "/srv", "BUCKET": "bkt"})

	cfg, err := ParseConfig([]byte(y), true, vars)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBs[0].Path != "/srv/app.db" || cfg.DBs[0].Replica.URL != "s3://bkt/app" {
		t.Errorf("expanded: path %q url %q", cfg.DBs[0].Path, cfg.DBs[0].Replica.URL)
	}

	// -no-expand-env keeps the text as written.
	cfg, err = ParseConfig([]byte(y), false, vars)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cfg.DBs[0].Path, "${DATA}/app.db") || cfg.DBs[0].Replica.URL != "s3://$BUCKET/app" {
		t.Errorf("not expanded: path %q url %q", cfg.DBs[0].Path, cfg.DBs[0].Replica.URL)
	}
}

func TestParseConfig_LegacyReplicas(t *testing.T) {
	const y = `
dbs:
  - path: /a.db
    replicas:
      - type: file
        path: /backups/a
        name: local
  - path: /b.db
    replicas:
      - type: s3
        bucket: bkt
        path: db/b
        region: us-east-1
`
	cfg, err := ParseConfig([]byte(y), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	// The region is an option, not part of the URL (see TestReplicaOptions).
	for i, want := range []string{"file:///backups/a", "s3://bkt/db/b"} {
		rc, err := cfg.DBs[i].ReplicaConfig()
		if err != nil {
			t.Fatal(err)
		}
		got, err := rc.ReplicaURL()
		if err != nil || got != want {
			t.Errorf("dbs[%d] url = %q, %v; want %q", i, got, err, want)
		}
	}
}

// TestParseConfig_AllKeys: every key of Litestream v0.5.18's config
// structs loads; those whose setting this build cannot carry out are an
// error that names the key, its line and why, never a silent no-op.
func TestParseConfig_AllKeys(t *testing.T) {
	const all = `
addr: ":9090"
mcp-addr: ":3001"
exec: myapp
heartbeat-url: https://hc.example.com/x
heartbeat-interval: 2m
shutdown-sync-timeout: 10s
shutdown-sync-interval: 1s
shutdown-timeout: 45s
socket: {enabled: true, path: /tmp/l.sock, permissions: 0600}
logging: {level: trace, type: pretty, stderr: true, source: true}
levels:
  - interval: 30s
snapshot: {interval: 1h, retention: 24h}
validation: {interval: 1h}
l0-retention: 5m
l0-retention-check-interval: 15s
verify-compaction: true
retention: {enabled: true}
sync-interval: 1s
validation-interval: 1h
max-sync-ltx-files: 256
auto-recover: true
sign-payload: true
sign-accept-encoding: true
require-content-md5: true
put-object-content-md5: false
dbs:
  - path: /a.db
    meta-path: /var/lib/a
    monitor-interval: 1s
    checkpoint-interval: 1m
    busy-timeout: 1s
    min-checkpoint-page-count: 1000
    truncate-page-n: 121359
    max-sync-wal-bytes: 67108864
    restore-if-db-not-exists: true
    replica:
      url: s3://bucket/a
      access-key-id: AKIA
      secret-access-key: secret
      region: us-east-1
      endpoint: http://127.0.0.1:9000
      force-path-style: true
      skip-verify: false
      part-size: 5MiB
      concurrency: 2
  - dir: /data
    pattern: "*.db"
    recursive: true
    watch: true
    meta-dir: /var/lib/meta
    snapshot: {interval: 1h}
    replica:
      type: sftp
      host: backup:22
      user: u
      password: p
      key-path: /k
      host-key: ssh-ed25519 AAAA
      concurrent-writes: true
      path: /backups
  - path: /b.db
    replicas:
      - type: abs
        bucket: c
        account-name: acct
        account-key: key
        sas-token: tok
        name: legacy
  - path: /c.db
    replica:
      url: nats://127.0.0.1:4222/bkt
      jwt: j
      seed: s
      creds: /c
      nkey: /n
      username: u
      password: p
      token: t
      tls: false
      root-cas: [/ca]
      client-cert: /cert
      client-key: /key
      max-reconnects: 3
      reconnect-wait: 1s
      timeout: 5s
  - path: /d.db
    replica:
      type: webdav
      webdav-url: http://dav:8080
      webdav-username: u
      webdav-password: p
      path: /d
`
	if _, err := ParseConfig([]byte("dbs:\n  - path: /a.db\n    replica: {url: 's3://b/a?sign-payload=true&forcePathStyle=true'}\n"), true, env(nil)); err != nil {
		t.Errorf("sign-payload=true in the URL: %v", err)
	}
	cfg, err := ParseConfig([]byte(all), true, env(nil))
	if err != nil {
		t.Fatalf("a config with every key must load: %v", err)
	}
	if cfg.Snapshot.Interval == nil || *cfg.Snapshot.Interval != time.Hour {
		t.Errorf("snapshot interval %v", cfg.Snapshot.Interval)
	}

	base := "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/a\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"age recipient", base + "      age: {recipients: [x]}\n", "age.recipients: recipient 1"},
		{"age identity file", base + "      age: {identities: [/nonexistent/key.txt]}\n", "age.identities: age identity file: open /nonexistent/key.txt"},
		{"sse on file", "dbs:\n  - path: /a.db\n    replica:\n      url: file:///b\n      sse-customer-key: x\n", "line 5: dbs[0].replica.sse-customer-key: server-side encryption is only available on s3 replicas"},
		{"sse-kms on nats", "dbs:\n  - path: /a.db\n    replica:\n      url: nats://127.0.0.1:4222/b\n      sse-kms-key-id: k\n", "line 5: dbs[0].replica.sse-kms-key-id: server-side encryption is only available on s3 replicas, not nats"},
		{"v0.3 retention", base + "      retention: 24h\n", "line 5: dbs[0].replica.retention: is a Litestream v0.3 replica key"},
		{"v0.3 snapshot-interval", base + "      snapshot-interval: 1h\n", "snapshot.interval"},
		{"v0.3 max-checkpoint-page-count", "dbs:\n  - path: /a.db\n    max-checkpoint-page-count: 10\n    replica: {url: file:///b}\n", "line 3: dbs[0].max-checkpoint-page-count"},
		{"SSE-C and SSE-KMS", "sse-kms-key-id: k\n" + base + "      sse-customer-key: x\n", "sse-kms-key-id: cannot be used together with sse-customer-key"},
		{"conflicting db snapshots", "dbs:\n  - path: /a.db\n    snapshot: {interval: 1h}\n    replica: {url: file:///b}\n  - path: /c.db\n    snapshot: {interval: 2h}\n    replica: {url: file:///d}\n", "conflicting database snapshot intervals"},
		{"dir without pattern", "dbs:\n  - dir: /x\n    replica: {url: file:///b}\n", "'pattern' is required"},
		{"watch without dir", "dbs:\n  - path: /a.db\n    watch: true\n    replica: {url: file:///b}\n", "'watch' can only be enabled with a directory"},
		{"path and dir", "dbs:\n  - path: /a.db\n    dir: /x\n    pattern: '*'\n    replica: {url: file:///b}\n", "cannot specify both 'path' and 'dir'"},
		{"heartbeat interval", "heartbeat-interval: 0s\n", "heartbeat-interval"},
	} {
		_, err := ParseConfig([]byte(tc.yaml), true, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestByteSizeYAML: size keys use the one size rule (userinput.ParseSize,
// tested there): 64MB is 64,000,000 bytes as in Litestream v0.5.18's YAML,
// 64MiB 2^26, and a bad size names its line.
func TestByteSizeYAML(t *testing.T) {
	for in, want := range map[string]ByteSize{"64MB": 64_000_000, "64MiB": 64 << 20, "1048576": 1 << 20, "1.5 KiB": 1536, "2k": 2000} {
		var v struct {
			S ByteSize `yaml:"s"`
		}
		if err := yaml.Unmarshal([]byte("s: "+in), &v); err != nil || v.S != want {
			t.Errorf("%q: got %d, %v; want %d", in, v.S, err, want)
		}
	}
	var v struct {
		S ByteSize `yaml:"s"`
	}
	if err := yaml.Unmarshal([]byte("\ns: 5 parsecs"), &v); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad size: err = %v, want one naming line 2", err)
	}
}

func TestReadConfigFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadConfigFile(filepath.Join(dir, "none.yml"), true, env(nil)); err == nil || !strings.Contains(err.Error(), "none.yml") {
		t.Errorf("missing file: err = %v, want one naming the file", err)
	}
	p := filepath.Join(dir, "l.yml")
	if err := os.WriteFile(p, []byte("dbs:\n  - path: /a.db\n    replica: {url: file:///b}\n    nope: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadConfigFile(p, true, env(nil))
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("err = %v, want one naming the file and line 4", err)
	}
}

// The sample configuration shipped in etc/ must load.
func TestSampleConfig(t *testing.T) {
	cfg, err := ReadConfigFile("../../etc/litestream.yml", true, env(map[string]string{"APP_DATA": "/srv/app"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DBs) != 2 || cfg.DBs[1].Path != "/srv/app/audit.db" {
		t.Fatalf("dbs = %+v", cfg.DBs)
	}
	for _, db := range cfg.DBs {
		rc, err := db.ReplicaConfig()
		if err != nil {
			t.Fatal(err)
		}
		if u, err := rc.ReplicaURL(); err != nil || !strings.HasPrefix(u, "file:///var/backups/litestream/") {
			t.Errorf("%s: replica url %q, %v", db.Path, u, err)
		}
	}
}
