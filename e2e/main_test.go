package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// Set by TestMain, read-only afterwards.
var (
	// binPath is the litestream binary (the shared cached build; never
	// modify it).
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
	// One build shared by every test (and by the other packages' tests:
	// internal/testsupport caches it by content): the tests exercise the
	// real process (flags, exit status, signals), not an in-process copy.
	if binPath, err = testsupport.BuildCLI(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// fixtureDir returns the Litestream v0.5.18 fixture (README.md, source.db,
// replica/), kept in the repository by internal/testsupport.
func fixtureDir(t *testing.T) string {
	t.Helper()
	return testsupport.Fixture(t)
}
