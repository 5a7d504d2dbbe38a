package vfs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/pagecache"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/retry"
	"github.com/litestream-go/litestream/vfs"
)

// flipInPayload flips one byte in the middle of the compressed payload of
// the largest page frame of a file (an incompressible page, stored as LZ4
// literals, so the flip decodes to a page of the right size with one wrong
// byte) and returns the page number.
func flipInPayload(t *testing.T, c remote.Client, root string, level int, minTXID, maxTXID ltx.TXID) uint32 {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), level, minTXID)
	if err != nil || len(files) == 0 || files[0].MaxTXID != maxTXID {
		t.Fatalf("list: %v %v", files, err)
	}
	fi, err := index.ReadFileIndex(context.Background(), c, files[0])
	if err != nil {
		t.Fatal(err)
	}
	var big index.Page
	for _, p := range fi.Pages {
		if p.Size > big.Size {
			big = p
		}
	}
	path := filepath.Join(root, "ltx", "0", ltx.FormatFilename(minTXID, maxTXID))
	if level != 0 {
		t.Fatal("level-0 files only")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	payload := big.Offset + ltx.PageHeaderSize + 4
	if n := binary.BigEndian.Uint32(b[big.Offset+ltx.PageHeaderSize:]); int64(n)+ltx.PageHeaderSize+4 != big.Size {
		t.Fatalf("frame of page %d is not in the block encoding", big.Pgno)
	}
	b[payload+(big.Size-ltx.PageHeaderSize-4)/2] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return big.Pgno
}

// A byte flipped inside an LZ4 block of a small file decodes to a page of
// the right size: a range read cannot tell. The VFS reads small files whole
// and verifies them, so the query fails with an error instead of returning
// the wrong row. With whole-file reads switched off (the behaviour before),
// the same query returns wrong data without an error, which is what the
// first half of the test demonstrates.
func TestVFSVerifiesSmallFiles(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	if _, err := p.Exec(ctx, insertRows(5, 100)); err != nil {
		t.Fatal(err)
	}
	const u = "file:///corrupt"
	// A reader that is open before the damaged file arrives.
	early, earlyName := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour,
		Fetch: pagecacheNoRetry()}})
	earlyDB := openDB(t, earlyName, u)
	before := row(ctx, t, earlyDB, sumQuery)

	txid, err := p.Exec(ctx, "insert into t(v, pad) values (1000, randomblob(3000))")
	if err != nil {
		t.Fatal(err)
	}
	const q = "select hex(pad) from t where v = 1000"
	want := row(ctx, t, p.DB, q)
	flipInPayload(t, p.Client, root, 0, txid, txid)
	desc := remote.FileDesc(0, txid, txid)

	r, err := early.Replica(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); err == nil || !strings.Contains(err.Error(), desc) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("poll of a damaged file: %v", err)
	}
	if got := row(ctx, t, earlyDB, sumQuery); got != before {
		t.Fatalf("after a failed poll the reader shows %s, want the state before %s", got, before)
	}
	if got := row(ctx, t, earlyDB, "PRAGMA litestream_error"); !strings.Contains(got, desc) {
		t.Fatalf("litestream_error %q does not name %s", got, desc)
	}

	_, unverified := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour, WholeFileSize: -1}})
	got, err := rowErr(ctx, openDB(t, unverified, u), q)
	if err != nil || got == want {
		t.Fatalf("range reads of the damaged file: %v (same row: %v); the test no longer shows the hole it guards", err, got == want)
	}

	// A reader opened now serves the state before the damaged file (no
	// other file holds its TXID) and says why.
	_, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour,
		Fetch: pagecacheNoRetry()}})
	fresh := openDB(t, name, u)
	if got := row(ctx, t, fresh, sumQuery); got != before {
		t.Fatalf("a fresh reader shows %s, want the state before the damaged file %s", got, before)
	}
	if got := row(ctx, t, fresh, "PRAGMA litestream_error"); !strings.Contains(got, desc) || !strings.Contains(got, "checksum") || !strings.Contains(got, "gap") {
		t.Fatalf("litestream_error %q does not name the damaged file and the gap it leaves", got)
	}

	// Once a compaction covers the damaged file's TXID, the early reader
	// reads around the file and reaches the latest state; a new reader's
	// plan takes the compaction.
	if err := p.Compact(ctx, 1, txid-1, txid); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); err == nil || !strings.Contains(err.Error(), "reading around damaged files") || !strings.Contains(err.Error(), desc) {
		t.Fatalf("poll with a compaction covering the damaged file: %v, want it reached by reading around %s", err, desc)
	}
	if err := r.Poll(ctx); err != nil {
		t.Fatalf("the next poll: %v", err)
	}
	if got := row(ctx, t, earlyDB, q); got != want {
		t.Fatal("the early reader does not show the latest row after reading around the damaged file")
	}
	_, name2 := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour,
		Fetch: pagecacheNoRetry()}})
	fresh2 := openDB(t, name2, u)
	if got := row(ctx, t, fresh2, q); got != want {
		t.Fatal("a fresh reader does not show the latest row after reading around the damaged file")
	}
}

func pagecacheNoRetry() pagecache.Options { return pagecache.Options{Retry: retry.Never} }

// Files this project's writer uploads carry a checksum per page (the LZ4
// frame encoding, internal/ltxframe), so a flipped byte is an error even in
// a file read by page range: here every file is read by range
// (WholeFileSize -1) and a byte in the middle of each page of the writer's
// latest file is flipped in turn; no query returns other rows.
func TestVFSVerifiesPagesOfOurFiles(t *testing.T) {
	ctx := context.Background()
	s := newGapSource(t)
	if _, err := s.app.Exec("create table b(id integer primary key, x blob)"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.Exec("insert into b(x) select randomblob(2000) from (with recursive c(n) as (select 1 union all select n+1 from c where n < 20) select n from c)"); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	const digest = "select count(*), sum(length(x)), group_concat(hex(substr(x, 1000, 8)), '') from b"
	want := row(ctx, t, s.app, digest)
	txid := s.w.Status().TXID
	path := filepath.Join(s.root, "ltx", "0", ltx.FormatFilename(txid, txid))
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := index.ReadFileIndex(ctx, s.client, &ltx.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid, Size: int64(len(orig))})
	if err != nil {
		t.Fatal(err)
	}
	const u = "file:///frames"
	errs := 0
	for _, p := range fi.Pages {
		if binary.BigEndian.Uint16(orig[p.Offset+4:]) != 0 {
			t.Fatalf("page %d of %s is not in the frame encoding", p.Pgno, path)
		}
		b := bytes.Clone(orig)
		b[p.Offset+p.Size/2] ^= 0x10
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, name := register(t, map[string]remote.Client{u: s.client}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour,
			WholeFileSize: -1, Fetch: pagecacheNoRetry()}})
		db := openDB(t, name, u)
		got, err := rowErr(ctx, db, digest)
		switch {
		case err != nil:
			errs++
		case got != want:
			t.Fatalf("page %d flipped: the VFS returned %s, want %s or an error", p.Pgno, got, want)
		}
		db.Close()
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pages flipped in turn: %d queries failed, the rest read other pages and were right", len(fi.Pages), errs)
	if errs == 0 {
		t.Fatal("no flip was detected")
	}
}
