package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
)

func TestContract(t *testing.T) {
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		return New(filepath.Join(t.TempDir(), "replica"))
	})
}

// TestContractLeavesNoTempFiles runs the contract on one directory tree and
// then checks that nothing but level directories and LTX files remain.
func TestContractLeavesNoTempFiles(t *testing.T) {
	base := t.TempDir()
	n := 0
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		n++
		return New(filepath.Join(base, strconv.Itoa(n)))
	})
	err := filepath.WalkDir(base, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if _, _, err := ltx.ParseFilename(d.Name()); err != nil {
			t.Errorf("unexpected file left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, minTXID, maxTXID ltx.TXID, ts time.Time) []byte {
	return remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: ts, Pages: 2, Seed: uint64(minTXID)})
}

// TestFixture lists and reads the replica written by Litestream v0.5.18.
func TestFixture(t *testing.T) {
	fixture := testsupport.FixtureReplica(t)
	c := New(fixture)
	want := map[int][]string{
		0: {"1-1", "2-2", "3-3", "4-4", "5-5", "6-6", "7-7", "8-8", "9-9", "a-a", "b-b", "c-c", "d-d", "e-e", "f-f"},
		1: {"1-1", "2-5", "6-9", "a-f"},
		2: {"1-1", "2-9", "a-f"},
		9: {"1-1"},
	}
	for level := 0; level <= remote.MaxLevel; level++ {
		infos, err := c.LTXFiles(t.Context(), level, 0)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		var got []string
		for _, info := range infos {
			got = append(got, fmt.Sprintf("%x-%x", uint64(info.MinTXID), uint64(info.MaxTXID)))
			fi, err := os.Stat(filepath.Join(fixture, "ltx", strconv.Itoa(level), remote.FileName(info.MinTXID, info.MaxTXID)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != fi.Size() || !info.CreatedAt.Equal(fi.ModTime()) || info.CreatedAt.Location() != time.UTC {
				t.Fatalf("level %d %s: size %d created %v; file has %d %v", level, remote.FileName(info.MinTXID, info.MaxTXID), info.Size, info.CreatedAt, fi.Size(), fi.ModTime())
			}
			// Every file decodes whole and its header matches its name.
			rc, err := c.OpenLTXFile(t.Context(), level, info.MinTXID, info.MaxTXID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			dec := ltx.NewDecoder(rc)
			if err := dec.Verify(); err != nil {
				t.Fatalf("level %d %s: %v", level, remote.FileName(info.MinTXID, info.MaxTXID), err)
			}
			rc.Close()
			if h := dec.Header(); h.MinTXID != info.MinTXID || h.MaxTXID != info.MaxTXID {
				t.Fatalf("header %s-%s in %s", h.MinTXID, h.MaxTXID, remote.FileName(info.MinTXID, info.MaxTXID))
			}
		}
		if strings.Join(got, ",") != strings.Join(want[level], ",") {
			t.Errorf("level %d: got %v, want %v", level, got, want[level])
		}
	}
	// Seek within the fixture: numeric, so 0xa..0xf follow 9.
	infos, err := c.LTXFiles(t.Context(), 0, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 7 || infos[0].MinTXID != 9 || infos[6].MinTXID != 15 {
		t.Fatalf("seek 9: got %d files", len(infos))
	}
}

func TestLayoutAndMtime(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	c := New(root)
	ts := time.Date(2020, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	data := build(t, 0x1a, 0x2b, ts)
	info, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "ltx", "3", "000000000000001a-000000000000002b.ltx")
	if c.FilePath(3, 0x1a, 0x2b) != path {
		t.Fatalf("FilePath = %s, want %s", c.FilePath(3, 0x1a, 0x2b), path)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("file content differs")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(ts) {
		t.Fatalf("mtime %v, want %v", fi.ModTime(), ts)
	}
	if info.CreatedAt.Location() != time.UTC || !info.CreatedAt.Equal(ts) {
		t.Fatalf("CreatedAt %v", info.CreatedAt)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("level dir holds %d entries, want 1", len(entries))
	}
	if c.Type() != "file" {
		t.Fatalf("Type() = %q", c.Type())
	}
}

func TestListIgnoresForeignFiles(t *testing.T) {
	root := t.TempDir()
	c := New(root)
	data := build(t, 1, 1, time.Now())
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	dir := c.LevelDir(0)
	for _, name := range []string{
		".0000000000000002-0000000000000002.ltx.tmp-123", // our temp file
		"0000000000000003-0000000000000003.ltx.tmp",
		"0000000000000004-0000000000000004.LTX",
		"000000000000000A-000000000000000A.ltx", // upper case: not a name we write
		"0000000000000005-0000000000000005",
		"README",
		"5-5.ltx",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "0000000000000006-0000000000000006.ltx"), 0o755); err != nil {
		t.Fatal(err)
	}
	infos, err := c.LTXFiles(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].MinTXID != 1 {
		t.Fatalf("listed %d files", len(infos))
	}
}

func TestRootErrors(t *testing.T) {
	tmp := t.TempDir()
	regular := filepath.Join(tmp, "regular")
	if err := os.WriteFile(regular, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("missing root lists empty", func(t *testing.T) {
		infos, err := New(filepath.Join(tmp, "missing", "deeper")).LTXFiles(t.Context(), 0, 0)
		if err != nil || len(infos) != 0 {
			t.Fatalf("got %v, %v", infos, err)
		}
	})
	t.Run("root is a regular file", func(t *testing.T) {
		c := New(regular)
		if _, err := c.LTXFiles(t.Context(), 0, 0); err == nil || !strings.Contains(err.Error(), regular) {
			t.Fatalf("list: got %v, want an error naming %s", err, regular)
		}
		data := build(t, 1, 1, time.Now())
		if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), regular) {
			t.Fatalf("write: got %v, want an error naming %s", err, regular)
		}
	})
	t.Run("unreadable root", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: permissions are not enforced")
		}
		root := filepath.Join(tmp, "locked")
		c := New(root)
		if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(build(t, 1, 1, time.Now()))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(root, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(root, 0o755) })
		_, err := c.LTXFiles(t.Context(), 0, 0)
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), root) {
			t.Fatalf("got %v, want a permission error naming %s", err, root)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	c := New(t.TempDir())
	data := build(t, 1, 1, time.Now())
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	n := int64(len(data))
	tests := []struct {
		name         string
		level        int
		min, max     ltx.TXID
		offset, size int64
		notExist     bool
		contains     string
	}{
		{"missing", 0, 2, 2, 0, 0, true, c.FilePath(0, 2, 2)},
		{"missing level", 4, 1, 1, 0, 0, true, c.FilePath(4, 1, 1)},
		{"negative offset", 0, 1, 1, -1, 0, false, "invalid range"},
		{"negative size", 0, 1, 1, 0, -1, false, "invalid range"},
		{"offset at end", 0, 1, 1, n, 0, false, "outside the file"},
		{"size past end", 0, 1, 1, n - 2, 3, false, "outside the file"},
		{"bad level", 10, 1, 1, 0, 0, false, "invalid level 10"},
		{"negative level", -1, 1, 1, 0, 0, false, "invalid level -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := c.OpenLTXFile(t.Context(), tt.level, tt.min, tt.max, tt.offset, tt.size)
			if err == nil {
				rc.Close()
				t.Fatal("no error")
			}
			if errors.Is(err, remote.ErrNotExist) != tt.notExist || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("got %v; want notExist=%v and %q", err, tt.notExist, tt.contains)
			}
		})
	}

	// A file that shrinks under an open reader fails rather than returning
	// fewer bytes. (Replicas never do this; the check guards the contract.)
	rc, err := c.OpenLTXFile(t.Context(), 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := os.Truncate(c.FilePath(0, 1, 1), n-5); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read of truncated file: got %v, want ErrUnexpectedEOF", err)
	}
}

func TestWriteErrors(t *testing.T) {
	ts := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	data := build(t, 5, 6, ts)
	tests := []struct {
		name     string
		level    int
		min, max ltx.TXID
		body     []byte
		contains string
	}{
		{"header TXIDs differ from name", 0, 5, 7, data, "header has TXIDs"},
		{"short header", 0, 5, 6, data[:50], "read LTX header"},
		{"not LTX", 0, 5, 6, bytes.Repeat([]byte("x"), 200), "LTX header"},
		{"zero TXID", 0, 0, 6, data, "invalid TXID range"},
		{"min > max", 0, 7, 6, data, "invalid TXID range"},
		{"bad level", 11, 5, 6, data, "invalid level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			c := New(root)
			_, err := c.WriteLTXFile(t.Context(), tt.level, tt.min, tt.max, bytes.NewReader(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.contains)
			}
			assertNoFiles(t, root)
		})
	}
}

// TestNoSpace injects ENOSPC into the temp file write, as a full disk
// returns it, and checks the message and the cleanup.
func TestNoSpace(t *testing.T) {
	root := t.TempDir()
	c := New(root)
	c.wrapWriter = func(w io.Writer) io.Writer {
		return &limitWriter{w: w, left: 300, path: w.(*os.File).Name()}
	}
	data := build(t, 1, 1, time.Now())
	_, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data))
	path := c.FilePath(0, 1, 1)
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %q; want a no-space error naming %s", err, path)
	}
	t.Log(err)
	assertNoFiles(t, root)
}

type limitWriter struct {
	w    io.Writer
	left int
	path string
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		n, _ := l.w.Write(p[:l.left])
		l.left = 0
		return n, &os.PathError{Op: "write", Path: l.path, Err: syscall.ENOSPC}
	}
	l.left -= len(p)
	return l.w.Write(p)
}

func assertNoFiles(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file left behind: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeleteAllKeepsRoot(t *testing.T) {
	root := t.TempDir()
	other := filepath.Join(root, "keep.txt")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(root)
	if _, err := c.WriteLTXFile(t.Context(), 2, 1, 1, bytes.NewReader(build(t, 1, 1, time.Now()))); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "ltx")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ltx dir still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("DeleteAll removed a file outside ltx/: %v", err)
	}
}
