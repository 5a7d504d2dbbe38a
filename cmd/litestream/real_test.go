package main

// The real Litestream v0.5.18, for the compatibility tests (golden output,
// its sample configs and Grafana dashboard): internal/testserver finds it.

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/litestream-go/litestream/internal/testserver"
)

const realVersion = testserver.LitestreamVersion

// realLS is the installed Litestream v0.5.18 (internal/testserver, shared
// with e2e/), with this package's lower-case method names.
type realLS struct{ *testserver.Litestream }

// realLitestream returns the installed Litestream v0.5.18, or skips the
// test saying how to install it (fails under LITESTREAM_REQUIRE_SERVERS).
func realLitestream(t testing.TB) *realLS {
	t.Helper()
	return &realLS{testserver.RealLitestream(t)}
}

func (r *realLS) cmd(ctx context.Context, env []string, args ...string) *exec.Cmd {
	return r.Cmd(ctx, env, args...)
}

func (r *realLS) run(t testing.TB, env []string, args ...string) (int, string, string) {
	t.Helper()
	return r.Run(t, env, args...)
}

func (r *realLS) file(rel string) string { return r.File(rel) }

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
