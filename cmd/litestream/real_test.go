package main

// The real Litestream v0.5.18, for the compatibility tests: golden output,
// replicas written by one tool and continued by the other, its sample
// configs and Grafana dashboard. scripts/testservers/litestream.sh installs
// it into the test server cache; its module source (docs/, etc/, grafana/)
// is read from the Go module cache, never copied into this repository.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testserver"
)

// Pinned; keep in step with scripts/testservers/litestream.sh.
const (
	realVersion = "v0.5.18"
	realModule  = "github.com/benbjohnson/litestream"
)

// requireServersEnv makes a missing install a failure (make test sets it).
const requireServersEnv = testserver.RequireEnv

// realLS is an installed Litestream v0.5.18.
type realLS struct {
	Bin    string // the binary
	ModDir string // its module source in the module cache
}

// testserversDir is where scripts/testservers/common.sh installs servers.
func testserversDir() string { return testserver.CacheDir() }

var (
	modCacheOnce sync.Once
	modCache     string
)

// goModCache returns `go env GOMODCACHE`.
func goModCache() string {
	modCacheOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err == nil {
			modCache = strings.TrimSpace(string(out))
		}
	})
	return modCache
}

// realLitestream returns the installed Litestream v0.5.18, or skips the
// test saying how to install it; with LITESTREAM_REQUIRE_SERVERS set the
// absence is a failure instead.
func realLitestream(t testing.TB) *realLS {
	t.Helper()
	r := &realLS{
		Bin:    filepath.Join(testserversDir(), "litestream-"+realVersion, "litestream"),
		ModDir: filepath.Join(goModCache(), realModule+"@"+realVersion),
	}
	var missing []string
	if fi, err := os.Stat(r.Bin); err != nil || fi.Mode()&0o111 == 0 {
		missing = append(missing, "binary "+r.Bin)
	}
	if _, err := os.Stat(filepath.Join(r.ModDir, "go.mod")); err != nil {
		missing = append(missing, "module source "+r.ModDir)
	}
	if len(missing) > 0 {
		msg := "Litestream " + realVersion + " is not installed (" + strings.Join(missing, ", ") +
			"): run scripts/testservers/litestream.sh (or make test)"
		if os.Getenv(requireServersEnv) != "" {
			t.Fatalf("%s; %s is set, so this is a failure", msg, requireServersEnv)
		}
		t.Skip(msg)
	}
	return r
}

// cmd returns a command running the real Litestream with args, in the
// environment of the test minus AWS_CA_BUNDLE (with it set, v0.5.18
// cannot build its S3 client) plus env ("KEY=value").
func (r *realLS) cmd(ctx context.Context, env []string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, r.Bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, env...)
	c.WaitDelay = 5 * time.Second
	return c
}

// run runs the real Litestream to completion (bounded by a minute) and
// returns its exit status, stdout and stderr.
func (r *realLS) run(t testing.TB, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := r.cmd(ctx, env, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run litestream %s %v: %v", realVersion, args, err)
	}
	return code, stdout.String(), stderr.String()
}

// file returns the path of a file of its module source (docs/..., etc/...).
func (r *realLS) file(rel string) string { return filepath.Join(r.ModDir, filepath.FromSlash(rel)) }

// TestRealLitestream_Installed checks that the compatibility tests have
// what they compare against: the binary reports v0.5.18 and its module
// holds the documents the tests read.
func TestRealLitestream_Installed(t *testing.T) {
	r := realLitestream(t)
	code, stdout, stderr := r.run(t, nil, "version")
	if code != 0 || strings.TrimSpace(stdout) != realVersion {
		t.Fatalf("litestream version: exit %d, stdout %q, stderr %q; want %s", code, stdout, stderr, realVersion)
	}
	for _, rel := range []string{"docs/CLI_JSON_OUTPUT.md", "etc/litestream.yml", "grafana/litestream-dashboard.json",
		"cmd/litestream/main.go", "server.go"} {
		if _, err := os.Stat(r.file(rel)); err != nil {
			t.Errorf("module file %s: %v", rel, err)
		}
	}
}
