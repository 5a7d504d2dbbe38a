package testsupport

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of the given size (mount's syntax, e.g. "30m")
// on a new directory, for tests that fill a disk, and unmounts it when the
// test ends. It skips the test when mounting is not possible (not root, no
// mount(8)).
func MountTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		tb.Skipf("cannot mount a %s tmpfs to fill (needs root and mount(8)): %v: %s", size, err, bytes.TrimSpace(out))
	}
	tb.Cleanup(func() {
		// Lazily: a test that failed may still hold files open on it.
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// FillVolume writes a file in dir until its volume is full (to the byte),
// then frees keep bytes of it, and returns the file's path; removing it
// frees the space again.
func FillVolume(tb testing.TB, dir string, keep int64) string {
	tb.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for _, n := range []int{len(buf), 4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					tb.Fatal(err)
				}
				break
			}
		}
	}
	if keep > 0 {
		fi, err := f.Stat()
		if err != nil {
			tb.Fatal(err)
		}
		if err := f.Truncate(max(0, fi.Size()-keep)); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

// DirNames returns the names of dir's entries, sorted.
func DirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
