package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// Set by TestMain, read-only afterwards.
var (
	// binPath is the litestream binary built for this test run.
	binPath string
	// repoRoot is the directory holding the module's go.mod.
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := testsupport.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "litestream-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if os.Getenv("E2E_KEEP") == "" {
		defer os.RemoveAll(dir)
	}
	binPath = filepath.Join(dir, "litestream")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// One build per test run, shared by every test: the tests exercise the
	// real process (flags, exit status, signals), not an in-process copy.
	cmd := exec.Command(goBin, "build", "-ldflags", "-X main.Version=e2e", "-o", binPath, "./cmd/litestream")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/litestream: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// fixtureDir returns the Litestream v0.5.18 fixture, which lives in shared/
// beside the repository (../shared from the repository root), in CI as here.
func fixtureDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot, "..", "shared", "fixtures", "litestream-v0.5.18-file")
	if _, err := os.Stat(filepath.Join(dir, "replica", "ltx")); err != nil {
		t.Fatalf("fixture not found (shared/ must be checked out beside the repository): %v", err)
	}
	return dir
}
