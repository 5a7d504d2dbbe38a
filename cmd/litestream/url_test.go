package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsURL(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"file:///backups/app", true},
		{"s3://bucket/path", true},
		{"webdavs://host/x", true},
		{"sftp://user@host:22/x", true},
		{"/data/app.db", false},
		{"data/app.db", false},
		{"./app.db", false},
		{"app:db", false},
		{"C:\\data\\app.db", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isURL(tt.in); got != tt.want {
			t.Errorf("isURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestReplicaArg(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		in, want string
	}{
		{"file:///backups/app", "file:///backups/app"},
		{"s3://bkt/app?endpoint=http://127.0.0.1:9000", "s3://bkt/app?endpoint=http://127.0.0.1:9000"},
		{"/backups/app", "file:///backups/app"},
		{"backups/app", "file://" + filepath.Join(wd, "backups/app")},
		{"/backups/with space", "file:///backups/with%20space"},
	}
	for _, tt := range tests {
		got, err := replicaArg(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("replicaArg(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := replicaArg(""); err == nil {
		t.Error("replicaArg(\"\") succeeded")
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"file:///backups/app", "file:///backups/app"},
		{"/backups/app", "file:///backups/app"},
		{"sftp://alice:hunter22@host/x", "sftp://alice:xxxxx@host/x"},
		{"sftp://alice@host/x", "sftp://alice@host/x"},
		{"abs://acct@cont/p?sas-token=abcd&region=x", "abs://acct@cont/p?region=x&sas-token=xxxxx"},
		{"s3://b/p?endpoint=http://h:9&secretAccessKey=zzzz", "s3://b/p?endpoint=http%3A%2F%2Fh%3A9&secretAccessKey=xxxxx"},
		{"s3://b/%zz", "s3://xxxxx"},
		{"ftp://u:pw@h/x?token=abc", "ftp://u:xxxxx@h/x?token=xxxxx"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactErr(t *testing.T) {
	raw := "sftp://alice:hunter22@host/x?token=s3cr3t"
	base := errors.New("boom")
	err := redactErr(fmt.Errorf("dial %s: password hunter22 rejected, token s3cr3t: %w", raw, base), raw)
	if msg := checkRedacted(t, err, base, "hunter22", "s3cr3t"); !strings.Contains(msg, "sftp://alice:xxxxx@host/x") {
		t.Errorf("message %q does not name the redacted URL", msg)
	}
}

// checkErr checks err against a table's wantErr: with one, err must
// contain it; without, err must be nil (the test stops otherwise). It
// reports whether there was an error (the case is done).
func checkErr(t *testing.T, err error, wantErr string) (failed bool) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one containing %q", err, wantErr)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

// checkRedacted fails the test if err's message holds one of secrets or
// err no longer wraps base; it returns the message.
func checkRedacted(t *testing.T, err, base error, secrets ...string) string {
	t.Helper()
	msg := err.Error()
	for _, secret := range secrets {
		if strings.Contains(msg, secret) {
			t.Errorf("message %q leaks %q", msg, secret)
		}
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is lost the wrapped error")
	}
	return msg
}

func TestResolveTarget(t *testing.T) {
	dir := t.TempDir()
	replicaDir := filepath.Join(dir, "replica")
	if err := os.MkdirAll(filepath.Join(replicaDir, "ltx", "0"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "litestream.yml")
	cfgText := fmt.Sprintf("dbs:\n  - path: %s/app.db\n    replica:\n      url: file://%s/backups/app\n", dir, dir)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Main{Getenv: env(map[string]string{"LITESTREAM_CONFIG": cfgPath})}
	noConfig := &Main{Getenv: env(map[string]string{"LITESTREAM_CONFIG": filepath.Join(dir, "absent.yml")})}

	tests := []struct {
		name    string
		m       *Main
		arg     string
		flagCfg string
		wantURL string
		wantDB  string
		wantErr string
	}{
		{name: "url", m: m, arg: "file:///x/y", wantURL: "file:///x/y"},
		{name: "url and -config", m: m, arg: "file:///x/y", flagCfg: cfgPath, wantErr: "-config"},
		{name: "db from $LITESTREAM_CONFIG", m: m, arg: filepath.Join(dir, "app.db"), wantURL: "file://" + dir + "/backups/app", wantDB: filepath.Join(dir, "app.db")},
		{name: "db from -config", m: noConfig, arg: filepath.Join(dir, "app.db"), flagCfg: cfgPath, wantURL: "file://" + dir + "/backups/app", wantDB: filepath.Join(dir, "app.db")},
		{name: "db not in config", m: m, arg: filepath.Join(dir, "other.db"), wantErr: "not found in config " + cfgPath},
		{name: "no config file", m: noConfig, arg: filepath.Join(dir, "app.db"), wantErr: "absent.yml"},
		{name: "replica directory as a path", m: noConfig, arg: replicaDir, wantURL: "file://" + replicaDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, err := tt.m.resolveTarget(tt.arg, &configFlags{path: tt.flagCfg})
			if checkErr(t, err, tt.wantErr) {
				return
			}
			if tgt.URL != tt.wantURL || tgt.DBPath != tt.wantDB {
				t.Errorf("got url %q db %q, want url %q db %q", tgt.URL, tgt.DBPath, tt.wantURL, tt.wantDB)
			}
		})
	}
}

// TestRedactURLOneList: the CLI hides the same parameters as remote.URL
// (remote.IsSecretParam), also for a URL remote.ParseURL refuses.
func TestRedactURLOneList(t *testing.T) {
	for _, raw := range []string{
		"nats://127.0.0.1:4222/bucket/db?seed=SUAMSEED&jwt=eyJWT&endpoint=e",
		"oss://bucket/db?seed=SUAMSEED&jwt=eyJWT&endpoint=e", // not a scheme of this build
	} {
		got := redactURL(raw)
		if strings.Contains(got, "SUAMSEED") || strings.Contains(got, "eyJWT") || !strings.Contains(got, "endpoint=e") {
			t.Errorf("redactURL(%q) = %q", raw, got)
		}
	}
}
