package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// Set once by TestMain (one build per test run, shared by every test), read
// only afterwards.
var (
	repoRoot string
	lsBin    string // the litestream binary built for this run
	extPath  string // litestream_vfs.so without ".so", as `.load` takes it
	shimPath string // fsyncstall.so, built from testdata/fsyncstall.c
	// missing names a tool the suite needs and does not have; every test
	// then skips saying so (fails under LITESTREAM_REQUIRE_SERVERS=1, as in
	// `make test`, which installs them).
	missing string
	long    bool // CHAOS=long
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	switch os.Getenv("CHAOS") {
	case "", "short":
	case "long":
		long = true
	default:
		fmt.Fprintf(os.Stderr, "chaos: CHAOS=%q: want short or long\n", os.Getenv("CHAOS"))
		return 2
	}
	root, err := testsupport.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	repoRoot = root
	for _, tool := range []string{"sqlite3", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = tool + " (scripts/install-deps.sh installs it)"
		}
	}
	if missing != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "litestream-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if os.Getenv("CHAOS_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "chaos: fsync shim in", dir, "(litestream and the extension are cached builds)")
	}
	// The CLI and the extension are internal/testsupport's cached builds,
	// shared with the other packages' tests (never modify them); the shim is
	// this suite's own.
	if lsBin, err = testsupport.BuildCLI(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	so, err := testsupport.BuildExtension()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	extPath = so[:len(so)-len(".so")]
	shimPath = filepath.Join(dir, "fsyncstall.so")
	shim := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", shimPath, "chaos/testdata/fsyncstall.c", "-ldl")
	shim.Dir = repoRoot
	if out, err := shim.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: build the fsync shim: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
