package testsupport

import (
	"bytes"
	"os/exec"
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
