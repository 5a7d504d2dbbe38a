package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
			wantErr: []string{"dbs[0]", "'path' is required"},
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
	if a.Path != "/data/app.db" || a.MetaPath != "/var/lib/litestream/app" ||
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
	if got := cfg.Unsupported(); len(got) != 0 {
		t.Errorf("Unsupported() = %q, want none", got)
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

func TestParseConfig_Unsupported(t *testing.T) {
	const y = `
addr: ":9090"
sign-payload: false
snapshot:
  interval: 1h
levels:
  - interval: 30s
l0-retention: 5m
exec: myapp
dbs:
  - path: /a.db
    busy-timeout: 1s
    replica:
      url: s3://b/a
      retention: 24h
      sse-customer-key: shh
      secret-access-key: supported
`
	cfg, err := ParseConfig([]byte(y), true, env(nil))
	if err != nil {
		t.Fatalf("a Litestream config with later-issue keys must load: %v", err)
	}
	got := cfg.Unsupported()
	want := []string{"sign-payload",
		"dbs[0].busy-timeout", "dbs[0].replica.retention", "dbs[0].replica.sse-customer-key"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("Unsupported() = %q, missing %q", got, w)
		}
	}
	for _, supported := range []string{"addr", "exec", "levels", "snapshot", "l0-retention", "dbs[0].replica.secret-access-key"} {
		if slices.Contains(got, supported) {
			t.Errorf("Unsupported() = %q, lists supported key %q", got, supported)
		}
	}
	// The global sign-payload is reported once, not again per replica.
	if slices.Contains(got, "dbs[0].replica.sign-payload") {
		t.Errorf("inherited key reported per replica: %q", got)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true},
		{"5MiB", 5 << 20, true},
		{"10MB", 10_000_000, true},
		{"1.5 KiB", 1536, true},
		{"2k", 2000, true},
		{"", 0, false},
		{"5 parsecs", 0, false},
		{"-1", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
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
	if got := cfg.Unsupported(); len(got) != 0 {
		t.Errorf("sample config uses unsupported keys %q", got)
	}
}
