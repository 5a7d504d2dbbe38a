package vfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/psanford/sqlite3vfs"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// version returns a one-page index version at txid with commit pages.
func version(t *testing.T, txid ltx.TXID, commit uint32) *index.Version {
	t.Helper()
	info := &ltx.FileInfo{Level: 0, MinTXID: 1, MaxTXID: txid}
	fi := &index.FileIndex{
		Info:   info,
		Header: ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: commit, MinTXID: 1, MaxTXID: txid},
		Pages:  []index.Page{{Pgno: 1, Offset: 100, Size: 10}},
	}
	var v *index.Version
	v, err := v.Apply(fi)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStampHeader(t *testing.T) {
	v := version(t, 0x1_2345_6789, 77)
	page := bytes.Repeat([]byte{0xee}, 4096)
	want := bytes.Clone(page)
	want[18], want[19] = 1, 1
	binary.BigEndian.PutUint32(want[24:], 0x2345_6789) // low 32 bits of the TXID
	binary.BigEndian.PutUint32(want[28:], 77)
	binary.BigEndian.PutUint32(want[92:], 0x2345_6789)

	// Any read window over page 1 gets exactly the stamped bytes.
	for _, w := range [][2]int64{{0, 4096}, {0, 100}, {24, 40}, {18, 19}, {19, 30}, {26, 27}, {90, 200}, {100, 4096}, {0, 1}} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			chunk := bytes.Clone(page[w[0]:w[1]])
			stampHeader(chunk, w[0], v)
			if !bytes.Equal(chunk, want[w[0]:w[1]]) {
				t.Fatalf("window %v: got %x, want %x", w, chunk, want[w[0]:w[1]])
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		in     string
		txid   ltx.TXID
		ts     time.Time
		latest bool
		err    bool
	}{
		{in: "latest", latest: true},
		{in: " LATEST ", latest: true},
		{in: "", latest: true},
		// Text TXIDs are hex, as in restore -txid (userinput.ParseTXID).
		{in: "15", txid: 0x15},
		{in: "10", txid: 16},
		{in: "f", txid: 15},
		{in: "0xF", txid: 15},
		{in: "0000000000000010", txid: 16},
		{in: "000000000000000a", txid: 10},
		{in: "0", err: true},
		{in: "2026-11-20T10:00:00Z", ts: ts("2026-11-20T10:00:00Z")},
		{in: "2026-11-20T10:00:00.123+02:00", ts: ts("2026-11-20T08:00:00.123Z")},
		{in: "2026-11-20 10:00:00", ts: ts("2026-11-20T10:00:00Z")},
		{in: "2026-11-20 10:00:00.5", ts: ts("2026-11-20T10:00:00.5Z")},
		{in: "2026-11-20", ts: ts("2026-11-20T00:00:00Z")},
		{in: "yesterday", err: true},
		{in: "-3", err: true},
	}
	for _, tc := range tests {
		txid, got, latest, err := ParseTarget(tc.in)
		if (err != nil) != tc.err || txid != tc.txid || !got.Equal(tc.ts) || latest != tc.latest {
			t.Errorf("ParseTarget(%q) = %v, %v, %v, %v", tc.in, txid, got, latest, err)
		}
	}
}

// interiorPage builds an interior B-tree page of type typ with the given
// child pointers (the last one is the right-most pointer).
func interiorPage(typ byte, hdr int, kids []uint32) []byte {
	b := make([]byte, 4096)
	b[hdr] = typ
	n := len(kids) - 1
	binary.BigEndian.PutUint16(b[hdr+3:], uint16(n))
	binary.BigEndian.PutUint32(b[hdr+8:], kids[n])
	off := 4096
	for i := 0; i < n; i++ {
		off -= 8
		binary.BigEndian.PutUint16(b[hdr+12+2*i:], uint16(off))
		binary.BigEndian.PutUint32(b[off:], kids[i])
		b[off+4] = byte(i) // the key varint
	}
	return b
}

func TestInteriorChildren(t *testing.T) {
	kids := []uint32{5, 9, 200, 7}
	for _, tc := range []struct {
		name string
		data []byte
		pgno uint32
		want []uint32
	}{
		{"table interior", interiorPage(0x05, 0, kids), 3, kids},
		{"index interior", interiorPage(0x02, 0, kids), 3, kids},
		{"page 1 interior", interiorPage(0x05, 100, kids), 1, kids},
		{"leaf", interiorPage(0x0d, 0, kids), 3, nil},
		{"child beyond the database", interiorPage(0x05, 0, []uint32{5, 999999, 7}), 3, nil},
		{"cell count too big", func() []byte { b := interiorPage(0x05, 0, kids); b[3] = 0xff; return b }(), 3, nil},
		{"short page", []byte{0x05}, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := interiorChildren(tc.data, tc.pgno, 1000)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMemFile(t *testing.T) {
	var m memFile
	if _, err := m.WriteAt([]byte("hello"), 10); err != nil {
		t.Fatal(err)
	}
	if err := m.Truncate(12); err != nil {
		t.Fatal(err)
	}
	// Growing again must not bring back the truncated bytes.
	if _, err := m.WriteAt([]byte("!"), 14); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 20)
	n, err := m.ReadAt(buf, 0)
	if n != 15 || err != io.EOF {
		t.Fatalf("read %d, %v", n, err)
	}
	if want := append(make([]byte, 10), 'h', 'e', 0, 0, '!'); !bytes.Equal(buf[:n], want) {
		t.Fatalf("got %q, want %q", buf[:n], want)
	}
	if size, _ := m.FileSize(); size != 15 {
		t.Fatalf("size %d", size)
	}
}

func TestCallbacksRecoverPanics(t *testing.T) {
	// A file whose replica is missing panics on every use; each callback
	// must turn that into an error SQLite understands, never a crash.
	v := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f := &file{vfs: v}
	buf := make([]byte, 100)
	if _, err := f.ReadAt(buf, 0); err != sqlite3vfs.IOErrorRead {
		t.Errorf("ReadAt: %v", err)
	}
	if _, err := f.FileSize(); err != sqlite3vfs.IOError {
		t.Errorf("FileSize: %v", err)
	}
	if err := f.Lock(sqlite3vfs.LockShared); err != sqlite3vfs.IOError {
		t.Errorf("Lock: %v", err)
	}
	if _, err := f.FileControl(14, "litestream_txid", nil); err != sqlite3vfs.IOError {
		t.Errorf("FileControl: %v", err)
	}
	if _, err := f.FileControl(14, fnPrefix+"lag", nil); err != sqlite3vfs.IOError {
		t.Errorf("FileControl fn: %v", err)
	}
	f.closed = false
	if err := f.Close(); err != sqlite3vfs.IOError {
		t.Errorf("Close: %v", err)
	}
	// Opening with a client opener that panics.
	v.opts.OpenClient = func(context.Context, string) (remote.Client, error) { panic("boom") }
	v.opts.ReplicaURL = "x"
	for range 2 { // the second open must not wait on the first
		if _, _, err := v.OpenURI("db", nil, sqlite3vfs.OpenMainDB|sqlite3vfs.OpenReadWrite); err != sqlite3vfs.CantOpenError {
			t.Errorf("OpenURI: %v", err)
		}
	}
}

func TestReplicaKey(t *testing.T) {
	same := [][2]string{
		{"file:///a/b", "/a/b"},
		{"file:///a/b/", "file:///a//b"},
		{"s3://bucket/db?region=x&endpoint=y", "s3://bucket/db/?endpoint=y&region=x"},
	}
	for _, p := range same {
		if replicaKey(p[0]) != replicaKey(p[1]) {
			t.Errorf("%q and %q are different replicas", p[0], p[1])
		}
	}
	differ := [][2]string{
		{"file:///a/b", "file:///a/c"},
		{"s3://bucket/db?secret-access-key=1", "s3://bucket/db?secret-access-key=2"},
		{"sftp://u:1@h/p", "sftp://u:2@h/p"},
		{"s3://bucket/db", "gs://bucket/db"},
	}
	for _, p := range differ {
		if replicaKey(p[0]) == replicaKey(p[1]) {
			t.Errorf("%q and %q are the same replica", p[0], p[1])
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("s3://bucket/db?secret-access-key=hunter2&region=x"); strings.Contains(got, "hunter2") || !strings.Contains(got, "region=x") {
		t.Errorf("redact: %s", got)
	}
	if got := redact("sftp://user:hunter2@host/path"); strings.Contains(got, "hunter2") {
		t.Errorf("redact: %s", got)
	}
}
