package testsupport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFixture: the fixture is in the repository, whole: source.db has the
// checksum its README gives and the replica holds every level Litestream
// wrote.
func TestFixture(t *testing.T) {
	b, err := os.ReadFile(FixtureSourceDB(t))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != FixtureSHA256 {
		t.Fatalf("source.db sha256 %x, want %s", sum, FixtureSHA256)
	}
	for level, n := range map[string]int{"0": 15, "1": 4, "2": 3, "9": 1} {
		ents, err := os.ReadDir(filepath.Join(FixtureReplica(t), "ltx", level))
		if err != nil || len(ents) != n {
			t.Errorf("level %s: %d files, %v; want %d", level, len(ents), err, n)
		}
	}
	cp := FixtureCopy(t)
	if err := os.Remove(filepath.Join(cp, "ltx", "9", "0000000000000001-0000000000000001.ltx")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(FixtureReplica(t), "ltx", "9", "0000000000000001-0000000000000001.ltx")); err != nil {
		t.Fatalf("removing from the copy touched the fixture: %v", err)
	}
}

// TestBuildCLICached: the second call finds the first one's build, and the
// binary is this repository's command with CLIVersion.
func TestBuildCLICached(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	first, err := BuildCLI()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second, err := BuildCLI()
	if err != nil {
		t.Fatal(err)
	}
	fi2, err := os.Stat(second)
	if err != nil {
		t.Fatal(err)
	}
	if second != first || !os.SameFile(fi, fi2) || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("second build %s (%v), want the cached %s (%v)", second, fi2.ModTime(), first, fi.ModTime())
	}
	t.Logf("cached lookup took %s", time.Since(start))
	out, err := exec.Command(second, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != CLIVersion {
		t.Fatalf("litestream version: %q, %v; want %q", out, err, CLIVersion)
	}
}

// TestSourceKey: the key changes with a source file and with the build
// arguments, not with a test file.
func TestSourceKey(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func(args ...string) string {
		t.Helper()
		k, err := sourceKey(root, args)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write("go.mod", "module x\n")
	write("a/a.go", "package a\n")
	k0 := key("build")
	write("a/a_test.go", "package a\n")
	write("a/testdata/x.go", "package x\n")
	if k := key("build"); k != k0 {
		t.Error("a test file changed the key")
	}
	write("a/a.go", "package a // changed\n")
	k1 := key("build")
	if k1 == k0 {
		t.Error("a source change kept the key")
	}
	if key("build", "-tags", "x") == k1 {
		t.Error("other build arguments kept the key")
	}
}

// A LockedBuffer with a Limit keeps what fits up to it (the write that
// crosses it whole) and drops later writes, reporting them written.
func TestLockedBufferLimit(t *testing.T) {
	b := &LockedBuffer{Limit: 5}
	for _, s := range []string{"abc", "def", "ghi"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "abcdef" || b.Len() != 6 {
		t.Fatalf("kept %q (%d bytes), want abcdef", got, b.Len())
	}
	var unlimited LockedBuffer
	unlimited.Write([]byte("abc"))
	unlimited.Write([]byte("def"))
	if got := unlimited.String(); got != "abcdef" {
		t.Fatalf("unlimited buffer kept %q", got)
	}
}

func TestFirstDiff(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 9<<20+5) // more than two of FirstDiff's chunks
	for i := range big {
		big[i] = byte(i * 7)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	changed := bytes.Clone(big)
	changed[8<<20+3] ^= 1
	a := write("a", big)
	for _, tc := range []struct {
		name string
		b    []byte
		want int64
	}{
		{"same", bytes.Clone(big), -1},
		{"changed", changed, 8<<20 + 3},
		{"prefix", big[:4<<20], 4 << 20},
		{"longer", append(bytes.Clone(big), 1), int64(len(big))},
		{"empty", nil, 0},
	} {
		got, err := FirstDiff(a, write(tc.name, tc.b))
		if err != nil || got != tc.want {
			t.Errorf("%s: FirstDiff = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := FirstDiff(a, filepath.Join(dir, "missing")); err == nil {
		t.Error("FirstDiff of a missing file: no error")
	}
}
