package testsupport

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// CLIVersion is the version string the cached CLI build carries
// (main.Version), so tests can recognise it in logs.
const CLIVersion = "test"

// BuildCLI returns the path of the litestream binary built from this
// repository's ./cmd/litestream, and BuildExtension the path of
// litestream_vfs.so built from ./extension (SQLITE3VFS_LOADABLE_EXT,
// c-shared). Both are built at most once per content of the repository's
// sources: the result is cached under the user cache directory, keyed by a
// hash of every non-test source file (.go, .c, .h), go.mod, go.sum, the Go
// version and the build arguments, so every package of one `go test ./...`
// (and every later run until a source changes) shares one build instead of
// building its own. Concurrent callers in several test processes wait for
// one build (a file lock). The files are shared: never modify them.
func BuildCLI() (string, error) {
	return cachedBuild("litestream", "./cmd/litestream", "-ldflags", "-X main.Version="+CLIVersion)
}

// BuildExtension: see BuildCLI. The returned path ends in .so; SQLite's
// .load takes it with or without the suffix.
func BuildExtension() (string, error) {
	return cachedBuild("litestream_vfs.so", "./extension", "-tags", "SQLITE3VFS_LOADABLE_EXT", "-buildmode=c-shared")
}

// buildCacheTTL: cached builds unused for this long are removed by the next
// build, so the cache does not grow with every edit.
const buildCacheTTL = 3 * 24 * time.Hour

func cachedBuild(name, pkg string, args ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	key, err := sourceKey(root, append([]string{runtime.Version(), goBin, name, pkg}, args...))
	if err != nil {
		return "", fmt.Errorf("hash the sources for the %s build: %w", name, err)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	cache := filepath.Join(base, "litestream-go-test", "builds")
	dir := filepath.Join(cache, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)

	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	now := time.Now()
	if _, err := os.Stat(out); err == nil {
		_ = os.Chtimes(dir, now, now) // in use: keep it past the TTL
		return out, nil
	}
	pruneBuilds(cache, key, now)
	// Build beside the final name and rename, so that a killed build never
	// leaves a truncated file that a later run would take as built.
	tmp := filepath.Join(dir, "tmp-"+name)
	cmd := exec.Command(goBin, append(append([]string{"build"}, args...), "-o", tmp, pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// sourceKey hashes extra and every file under root that can change a build.
func sourceKey(root string, extra []string) (string, error) {
	h := sha256.New()
	for _, s := range extra {
		fmt.Fprintf(h, "%q\n", s)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if d.IsDir() {
			if p != root && (n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case n == "go.mod" || n == "go.sum":
		case strings.HasSuffix(n, "_test.go"):
			return nil
		case strings.HasSuffix(n, ".go"), strings.HasSuffix(n, ".c"), strings.HasSuffix(n, ".h"):
		default:
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s\n", rel)
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// pruneBuilds removes cached builds other than keep unused for buildCacheTTL.
// A directory another process is building in was created just now and is
// younger than the TTL.
func pruneBuilds(cache, keep string, now time.Time) {
	ents, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() == keep || !e.IsDir() {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > buildCacheTTL {
			_ = os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
}
