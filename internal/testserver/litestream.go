package testserver

// The real Litestream v0.5.18, for the compatibility tests (cmd/litestream's
// golden output, sample configs and Grafana dashboard; e2e's replicas
// written by one tool and continued by the other).
// scripts/testservers/litestream.sh installs it into the cache directory;
// its module source (docs/, etc/, grafana/) is read from the Go module
// cache, never copied into this repository.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// Pinned; keep in step with scripts/testservers/litestream.sh.
const (
	LitestreamVersion = "v0.5.18"
	LitestreamModule  = "github.com/benbjohnson/litestream"
)

// Litestream is an installed Litestream v0.5.18.
type Litestream struct {
	Bin    string // the binary
	ModDir string // its module source in the module cache
}

var (
	modCacheOnce sync.Once
	modCache     string // `go env GOMODCACHE`, set once
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

// RealLitestream returns the installed Litestream v0.5.18, or skips the test
// saying how to install it; with LITESTREAM_REQUIRE_SERVERS set the absence
// is a failure instead.
func RealLitestream(tb testing.TB) *Litestream {
	tb.Helper()
	r := &Litestream{
		Bin:    filepath.Join(CacheDir(), "litestream-"+LitestreamVersion, "litestream"),
		ModDir: filepath.Join(goModCache(), LitestreamModule+"@"+LitestreamVersion),
	}
	var missing []string
	if fi, err := os.Stat(r.Bin); err != nil || fi.Mode()&0o111 == 0 {
		missing = append(missing, "binary "+r.Bin)
	}
	if _, err := os.Stat(filepath.Join(r.ModDir, "go.mod")); err != nil {
		missing = append(missing, "module source "+r.ModDir)
	}
	if len(missing) > 0 {
		msg := "Litestream " + LitestreamVersion + " is not installed (" + strings.Join(missing, ", ") +
			"): run scripts/testservers/litestream.sh (or make test)"
		if os.Getenv(RequireEnv) != "" {
			tb.Fatalf("%s; %s is set, so this is a failure", msg, RequireEnv)
		}
		tb.Skip(msg)
	}
	return r
}

// Cmd returns a command running the real Litestream with args, in the
// environment of the test minus AWS_CA_BUNDLE (with it set, v0.5.18 cannot
// build its S3 client) plus env ("KEY=value").
func (r *Litestream) Cmd(ctx context.Context, env []string, args ...string) *exec.Cmd {
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

// Run runs the real Litestream to completion (bounded by a minute) and
// returns its exit status, stdout and stderr.
func (r *Litestream) Run(tb testing.TB, env []string, args ...string) (int, string, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, stdout, stderr, err := testsupport.RunCommand(r.Cmd(ctx, env, args...))
	// A kill (the minute is up) is an exit status of -1, not a failure.
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("run litestream %s %v: %v", LitestreamVersion, args, err)
	}
	return code, stdout, stderr
}

// File returns the path of a file of its module source (docs/..., etc/...).
func (r *Litestream) File(rel string) string {
	return filepath.Join(r.ModDir, filepath.FromSlash(rel))
}

// CheckRun fails the test unless a run of either tool (this program or
// Litestream, named name) exited 0 and logged no error: Litestream logs
// sync errors and goes on, so its exit status alone proves nothing. It
// returns stdout and stderr together.
func CheckRun(tb testing.TB, name string, args []string, code int, stdout, stderr string) string {
	tb.Helper()
	if code != 0 {
		tb.Fatalf("%s %s: exit %d\n%s%s", name, strings.Join(args, " "), code, stdout, stderr)
	}
	for _, bad := range []string{"level=ERROR", "cannot verify wal state"} {
		if strings.Contains(stdout+stderr, bad) {
			tb.Fatalf("%s %s logged an error:\n%s%s", name, strings.Join(args, " "), stdout, stderr)
		}
	}
	return stdout + stderr
}
