// Package testsupport holds small helpers shared by the test suites that
// drive the real binaries (e2e/, chaos/). It is imported by tests only.
package testsupport

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// ModulePath is this repository's module path, as its go.mod declares it.
const ModulePath = "github.com/litestream-go/litestream"

// LockedBuffer collects a subprocess's output while the test reads it: the
// process's output goroutines write, the test reads, concurrently.
type LockedBuffer struct {
	// Limit, if positive, is how many bytes are kept: writes past it are
	// dropped (and reported written), for a long-running server's log.
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.buf.Len() >= b.Limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len returns the number of bytes written so far.
func (b *LockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// RepoRoot walks up from the working directory (the package directory under
// go test) to the directory of this module's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+ModulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of " + ModulePath + " not found above the working directory")
		}
		dir = parent
	}
}

// EnvInt returns the positive integer in the environment variable name (a
// size or count a run may scale, BENCH_RUNS say), or def if it is unset; any
// other value fails the test.
func EnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
