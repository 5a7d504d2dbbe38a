package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticBinary builds the binary of `make static`
// (scripts/build-static.sh), checks that it needs no dynamic loader or
// shared library, and runs it in an empty root holding only it and a
// database (chroot as root, else a user namespace): replicate -once to a
// file replica there, then restore with a full integrity check, and the
// copy has the rows. About 45 s (the static link); skipped with -short.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the static link takes a while")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "litestream")
	cmd := exec.Command("../../scripts/build-static.sh", bin, "static-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-static.sh: %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader (PT_INTERP)")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q", libs)
	}
	f.Close()

	// The database, made outside the root by the test's own SQLite.
	app := openApp(t, filepath.Join(root, "app.db"))
	insertRows(t, app, 25)
	app.Close()

	var inRoot func(args ...string) *exec.Cmd
	switch {
	case os.Geteuid() == 0:
		inRoot = func(args ...string) *exec.Cmd {
			return exec.Command("chroot", append([]string{root, "/litestream"}, args...)...)
		}
	default:
		if err := exec.Command("unshare", "-r", "--root="+root, "/litestream", "version").Run(); err != nil {
			t.Skipf("cannot enter an empty root: not root, and unshare -r --root failed: %v", err)
		}
		inRoot = func(args ...string) *exec.Cmd {
			return exec.Command("unshare", append([]string{"-r", "--root=" + root, "/litestream"}, args...)...)
		}
	}
	runIn := func(args ...string) string {
		t.Helper()
		c := inRoot(args...)
		c.Env = []string{} // nothing from the host either
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("litestream %s in the empty root: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := runIn("version"); out != "static-test\n" {
		t.Errorf("version = %q", out)
	}
	runIn("replicate", "-once", "/app.db", "file:///replica")
	runIn("restore", "-integrity-check", "full", "-o", "/restored.db", "file:///replica")
	if n := rowCount(t, filepath.Join(root, "restored.db")); n != 25 {
		t.Errorf("restored %d rows in the empty root, want 25", n)
	}
}
