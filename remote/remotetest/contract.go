package remotetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// LargeFileSize is the approximate size of the contract's large file: more
// than two 5 MiB parts, so multi-part uploads really use several parts.
const LargeFileSize = 12 << 20

// baseTime is the header timestamp of the contract's files: well in the
// past, so a backend that stores upload time instead is caught.
var baseTime = time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)

// Quiet is a logger that drops everything: for clients whose retry
// warnings a test provokes.
var Quiet = slog.New(slog.DiscardHandler)

// CloseAtEnd fails the test if err is not nil, and otherwise closes c when
// the test ends: for a client just made, as in
// c, err := New(cfg); return remotetest.CloseAtEnd(t, c, err).
func CloseAtEnd[C io.Closer](t testing.TB, c C, err error) C {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RunContract runs the behaviour every remote.Client must have. newClient
// must return a client over an empty replica, a fresh one on every call
// (each subtest calls it once); it should register its own cleanup.
//
// Randomized subtests log their seed; set REMOTETEST_SEED to replay one.
func RunContract(t *testing.T, newClient func(t *testing.T) remote.Client) {
	RunContractWithOptions(t, Options{}, newClient)
}

// Options relax the contract for what a storage service cannot do.
type Options struct {
	// TimestampPrecision is the precision of the stored creation time when
	// it is coarser than the LTX header's millisecond: SFTP (protocol
	// version 3) stores whole seconds. A backend with a coarser precision
	// may report the header timestamp truncated to it. Zero means
	// milliseconds: the timestamp must come back exactly.
	TimestampPrecision time.Duration
}

// contractClient carries the Options along with the client under test.
type contractClient struct {
	remote.Client
	opts Options
}

// LTXFilesAll passes the client's own AllLister on, so that the contract
// tests it.
func (c *contractClient) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	if al, ok := c.Client.(remote.AllLister); ok {
		return al.LTXFilesAll(ctx, exactTimes)
	}
	return nil, errors.ErrUnsupported
}

// RequestCounts passes the client's counts on.
func (c *contractClient) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.Client)
	return n
}

// optionsOf returns the Options the client under test runs with.
func optionsOf(c remote.Client) Options {
	if cc, ok := c.(*contractClient); ok {
		return cc.opts
	}
	return Options{}
}

// RunContractWithOptions is RunContract with the relaxations in opts; use
// it only for what the service itself cannot store, and say why.
func RunContractWithOptions(t *testing.T, opts Options, newClientFn func(t *testing.T) remote.Client) {
	newClient := func(t *testing.T) remote.Client {
		return &contractClient{Client: newClientFn(t), opts: opts}
	}
	t.Run("Type", func(t *testing.T) {
		if typ := newClient(t).Type(); typ == "" {
			t.Fatal("Type() is empty")
		}
	})
	t.Run("EmptyReplica", func(t *testing.T) { testEmptyReplica(t, newClient(t)) })
	t.Run("WriteRead", func(t *testing.T) { testWriteRead(t, newClient(t)) })
	t.Run("ReadRanges", func(t *testing.T) { testReadRanges(t, newClient(t)) })
	t.Run("ListSeek", func(t *testing.T) { testListSeek(t, newClient(t)) })
	t.Run("Levels", func(t *testing.T) { testLevels(t, newClient(t)) })
	t.Run("ReadMissing", func(t *testing.T) { testReadMissing(t, newClient(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newClient(t)) })
	t.Run("DeleteAll", func(t *testing.T) { testDeleteAll(t, newClient(t)) })
	t.Run("ListAll", func(t *testing.T) { testListAll(t, newClient(t)) })
	t.Run("RequestCounts", func(t *testing.T) { testRequestCounts(t, newClient(t)) })
	t.Run("Timestamp", func(t *testing.T) { testTimestamp(t, newClient(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newClient(t)) })
	t.Run("LargeFile", func(t *testing.T) { testLargeFile(t, newClient(t)) })
	t.Run("FailedUpload", func(t *testing.T) { testFailedUpload(t, newClient(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceledContext(t, newClient(t)) })
}

// seed returns the seed for a randomized subtest and logs it.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("REMOTETEST_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("REMOTETEST_SEED: %v", err)
		}
	}
	t.Logf("seed %d (REMOTETEST_SEED=%d replays it)", s, s)
	return s
}

// file is a synthetic LTX file and where it goes.
type file struct {
	level int
	spec  LTXSpec
	data  []byte
}

func newFile(t testing.TB, level int, minTXID, maxTXID ltx.TXID, pages int, seed uint64) file {
	spec := LTXSpec{
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Timestamp: baseTime.Add(time.Duration(minTXID) * time.Second),
		Pages:     pages,
		Seed:      seed,
	}
	return file{level: level, spec: spec, data: BuildLTX(t, spec)}
}

func (f file) name() string { return remote.FileDesc(f.level, f.spec.MinTXID, f.spec.MaxTXID) }

func write(t *testing.T, c remote.Client, f file) *ltx.FileInfo {
	t.Helper()
	info, err := c.WriteLTXFile(t.Context(), f.level, f.spec.MinTXID, f.spec.MaxTXID, bytes.NewReader(f.data))
	if err != nil {
		t.Fatalf("write %s: %v", f.name(), err)
	}
	checkInfo(t, optionsOf(c), "WriteLTXFile", info, f)
	return info
}

// checkInfo asserts that info describes f, CreatedAt included.
func checkInfo(t *testing.T, opts Options, what string, info *ltx.FileInfo, f file) {
	t.Helper()
	if info == nil {
		t.Fatalf("%s %s: nil FileInfo", what, f.name())
	}
	if info.Level != f.level || info.MinTXID != f.spec.MinTXID || info.MaxTXID != f.spec.MaxTXID {
		t.Fatalf("%s %s: got level %d %s-%s", what, f.name(), info.Level, info.MinTXID, info.MaxTXID)
	}
	if info.Size != int64(len(f.data)) {
		t.Fatalf("%s %s: size %d, want %d", what, f.name(), info.Size, len(f.data))
	}
	want := time.UnixMilli(f.spec.Timestamp.UnixMilli())
	if !timestampMatches(opts, info.CreatedAt, want) {
		t.Fatalf("%s %s: CreatedAt %s, want the header timestamp %s", what, f.name(),
			info.CreatedAt.Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
	}
}

// ReadRange reads size bytes at offset of a file (size 0: to its end) and
// closes it; the open's, the read's or the close's error.
func ReadRange(ctx context.Context, c remote.Client, level int, minTXID, maxTXID ltx.TXID, offset, size int64) ([]byte, error) {
	rc, err := c.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return b, err
}

func readFile(t *testing.T, c remote.Client, f file, offset, size int64) []byte {
	t.Helper()
	b, err := ReadRange(t.Context(), c, f.level, f.spec.MinTXID, f.spec.MaxTXID, offset, size)
	if err != nil {
		t.Fatalf("read %s offset=%d size=%d: %v", f.name(), offset, size, err)
	}
	return b
}

func list(t *testing.T, c remote.Client, level int, seek ltx.TXID) []*ltx.FileInfo {
	t.Helper()
	infos, err := c.LTXFiles(t.Context(), level, seek)
	if err != nil {
		t.Fatalf("list level %d from %s: %v", level, seek, err)
	}
	return infos
}

// timestampMatches reports whether a stored creation time got is the header
// timestamp want, or want truncated to the backend's coarser precision.
func timestampMatches(opts Options, got, want time.Time) bool {
	if got.Equal(want) {
		return true
	}
	return opts.TimestampPrecision > time.Millisecond && got.Equal(want.Truncate(opts.TimestampPrecision))
}

// checkList asserts that the listing is exactly want, in order.
func checkList(t *testing.T, c remote.Client, what string, got []*ltx.FileInfo, want []file) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: listed %d files %s, want %d %s", what, len(got), infoNames(got), len(want), fileNames(want))
	}
	for i := range want {
		checkInfo(t, optionsOf(c), what, got[i], want[i])
	}
}

func infoNames(infos []*ltx.FileInfo) []string {
	var s []string
	for _, i := range infos {
		s = append(s, fmt.Sprintf("L%d/%s", i.Level, remote.FileName(i.MinTXID, i.MaxTXID)))
	}
	return s
}

func fileNames(files []file) []string {
	var s []string
	for _, f := range files {
		s = append(s, fmt.Sprintf("L%d/%s", f.level, remote.FileName(f.spec.MinTXID, f.spec.MaxTXID)))
	}
	return s
}

func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
	}
}

func testEmptyReplica(t *testing.T, c remote.Client) {
	for _, level := range []int{0, 1, remote.SnapshotLevel} {
		if infos := list(t, c, level, 0); len(infos) != 0 {
			t.Fatalf("empty replica: level %d lists %s", level, infoNames(infos))
		}
	}
	if err := c.DeleteAll(t.Context()); err != nil {
		t.Fatalf("DeleteAll of an empty replica: %v", err)
	}
	if err := c.DeleteLTXFiles(t.Context(), nil); err != nil {
		t.Fatalf("DeleteLTXFiles(nil): %v", err)
	}
}

func testWriteRead(t *testing.T, c remote.Client) {
	f := newFile(t, 0, 5, 5, 3, 1)
	write(t, c, f)
	mustEqual(t, "whole file", readFile(t, c, f, 0, 0), f.data)
	checkList(t, c, "list", list(t, c, 0, 0), []file{f})

	// Read one page the way the VFS does: trailer-side size, page index,
	// then one page frame; decode it and compare with what was encoded.
	n := int64(len(f.data))
	tail := readFile(t, c, f, n-ltx.TrailerSize-8, 8)
	idxSize := int64(binary.BigEndian.Uint64(tail))
	idx := readFile(t, c, f, n-ltx.TrailerSize-8-idxSize, idxSize+8)
	elems, err := ltx.DecodePageIndex(bufio.NewReader(bytes.NewReader(idx)), f.level, f.spec.MinTXID, f.spec.MaxTXID)
	if err != nil {
		t.Fatalf("decode page index of %s: %v", f.name(), err)
	}
	if len(elems) != 3 {
		t.Fatalf("page index of %s has %d pages, want 3", f.name(), len(elems))
	}
	for pgno, e := range elems {
		frame := readFile(t, c, f, e.Offset, e.Size)
		hdr, data, err := ltx.DecodePageData(frame)
		if err != nil {
			t.Fatalf("decode page %d of %s: %v", pgno, f.name(), err)
		}
		if hdr.Pgno != pgno {
			t.Fatalf("page frame at %d of %s is page %d, want %d", e.Offset, f.name(), hdr.Pgno, pgno)
		}
		mustEqual(t, fmt.Sprintf("page %d", pgno), data, PageData(f.spec.Seed, pgno, 4096))
	}

	// A second write of the same name replaces the file.
	g := newFile(t, 0, 5, 5, 2, 2)
	write(t, c, g)
	mustEqual(t, "rewritten file", readFile(t, c, g, 0, 0), g.data)
	checkList(t, c, "list after rewrite", list(t, c, 0, 0), []file{g})
}

func testReadRanges(t *testing.T, c remote.Client) {
	f := newFile(t, 1, 2, 9, 4, 3)
	write(t, c, f)
	n := int64(len(f.data))
	ok := []struct {
		name         string
		offset, size int64
	}{
		{"whole, size 0", 0, 0},
		{"whole, explicit size", 0, n},
		{"header", 0, ltx.HeaderSize},
		{"middle", 100, 1000},
		{"one byte", 7, 1},
		{"to end from middle", n / 2, 0},
		{"trailer", n - ltx.TrailerSize, ltx.TrailerSize},
		{"last byte", n - 1, 1},
		{"last byte, size 0", n - 1, 0},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			want := f.data[tt.offset:]
			if tt.size > 0 {
				want = want[:tt.size]
			}
			mustEqual(t, fmt.Sprintf("offset=%d size=%d", tt.offset, tt.size), readFile(t, c, f, tt.offset, tt.size), want)
		})
	}

	// Out of range: the error may come from OpenLTXFile or from reading, but
	// it must come; returning fewer bytes than asked is not allowed.
	bad := []struct {
		name         string
		offset, size int64
	}{
		{"offset at end", n, 0},
		{"offset past end", n + 10, 1},
		{"size past end", n - 1, 2},
		{"whole plus one", 0, n + 1},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadRange(t.Context(), c, f.level, f.spec.MinTXID, f.spec.MaxTXID, tt.offset, tt.size)
			if err == nil {
				t.Fatalf("offset=%d size=%d of a %d-byte file: got %d bytes and no error", tt.offset, tt.size, n, len(b))
			}
		})
	}
}

func testListSeek(t *testing.T, c remote.Client) {
	s := seed(t)
	// TXIDs chosen so that name-prefix seeking and numeric seeking differ.
	txids := []ltx.TXID{1, 2, 0x0f, 0x10, 0x11, 0xff, 0x100, 0x101, 0x1000, 0x10000}
	var files []file
	for i, txid := range txids {
		files = append(files, newFile(t, 1, txid, txid+1, 1, uint64(i)))
	}
	order := rand.New(rand.NewPCG(s, 0)).Perm(len(files))
	for _, i := range order {
		write(t, c, files[i])
	}
	seeks := []ltx.TXID{0, 1, 2, 3, 0x0f, 0x10, 0x11, 0x12, 0xff, 0x100, 0x101, 0x102, 0x1000, 0x1001, 0x10000, 0x10001, 1 << 62}
	for _, seek := range seeks {
		var want []file
		for _, f := range files {
			if f.spec.MinTXID >= seek {
				want = append(want, f)
			}
		}
		checkList(t, c, fmt.Sprintf("list level 1 from %s", seek), list(t, c, 1, seek), want)
	}
}

func testLevels(t *testing.T, c remote.Client) {
	// The same TXIDs at several levels are distinct files.
	var files []file
	for i, level := range []int{0, 1, 2, 8, remote.SnapshotLevel} {
		files = append(files, newFile(t, level, 1, 1, i+1, uint64(10+i)))
	}
	for _, f := range files {
		write(t, c, f)
	}
	for _, f := range files {
		checkList(t, c, fmt.Sprintf("list level %d", f.level), list(t, c, f.level, 0), []file{f})
		mustEqual(t, f.name(), readFile(t, c, f, 0, 0), f.data)
	}
	for _, level := range []int{3, 4, 5, 6, 7} {
		if infos := list(t, c, level, 0); len(infos) != 0 {
			t.Fatalf("level %d lists %s, want nothing", level, infoNames(infos))
		}
	}
}

func testReadMissing(t *testing.T, c remote.Client) {
	check := func(what string, level int, minTXID, maxTXID ltx.TXID, offset, size int64) {
		t.Helper()
		_, err := ReadRange(t.Context(), c, level, minTXID, maxTXID, offset, size)
		if !errors.Is(err, remote.ErrNotExist) {
			t.Fatalf("%s: read of missing %s: got %v, want an error wrapping ErrNotExist", what, remote.FileDesc(level, minTXID, maxTXID), err)
		}
	}
	check("empty replica", 0, 1, 1, 0, 0)
	f := newFile(t, 0, 1, 1, 1, 4)
	write(t, c, f)
	check("existing level", 0, 2, 2, 0, 0)
	check("existing level, range", 0, 2, 2, 10, 5)
	check("other max TXID", 0, 1, 2, 0, 0)
	check("other level", 1, 1, 1, 0, 0)
}

func testDelete(t *testing.T, c remote.Client) {
	var files []file
	for txid := ltx.TXID(1); txid <= 5; txid++ {
		f := newFile(t, 0, txid, txid, 1, uint64(txid))
		write(t, c, f)
		files = append(files, f)
	}
	info := func(f file) *ltx.FileInfo {
		return &ltx.FileInfo{Level: f.level, MinTXID: f.spec.MinTXID, MaxTXID: f.spec.MaxTXID}
	}
	if err := c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{info(files[1]), info(files[3])}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	remaining := []file{files[0], files[2], files[4]}
	checkList(t, c, "after delete", list(t, c, 0, 0), remaining)
	if _, err := ReadRange(t.Context(), c, 0, 2, 2, 0, 0); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("read of deleted file: got %v, want ErrNotExist", err)
	}
	for _, f := range remaining {
		mustEqual(t, f.name(), readFile(t, c, f, 0, 0), f.data)
	}

	// Deleting files that are already gone, or never existed, is not an error.
	missing := []*ltx.FileInfo{info(files[1]), {Level: 0, MinTXID: 99, MaxTXID: 99}, {Level: 7, MinTXID: 1, MaxTXID: 5}}
	if err := c.DeleteLTXFiles(t.Context(), missing); err != nil {
		t.Fatalf("delete of missing files: %v", err)
	}
	// A mix of present and missing deletes the present one.
	if err := c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{info(files[3]), info(files[4])}); err != nil {
		t.Fatalf("delete of missing and present files: %v", err)
	}
	checkList(t, c, "after second delete", list(t, c, 0, 0), []file{files[0], files[2]})
}

func testDeleteAll(t *testing.T, c remote.Client) {
	for _, level := range []int{0, 1, remote.SnapshotLevel} {
		write(t, c, newFile(t, level, 1, 1, 1, uint64(level)))
		write(t, c, newFile(t, level, 2, 3, 1, uint64(level+100)))
	}
	if err := c.DeleteAll(t.Context()); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	for level := 0; level <= remote.MaxLevel; level++ {
		if infos := list(t, c, level, 0); len(infos) != 0 {
			t.Fatalf("after DeleteAll level %d lists %s", level, infoNames(infos))
		}
	}
	if err := c.DeleteAll(t.Context()); err != nil {
		t.Fatalf("second DeleteAll: %v", err)
	}
	// The replica is usable again.
	f := newFile(t, 0, 1, 1, 1, 7)
	write(t, c, f)
	checkList(t, c, "write after DeleteAll", list(t, c, 0, 0), []file{f})
	mustEqual(t, f.name(), readFile(t, c, f, 0, 0), f.data)
}

// testListAll checks remote.ListAll and ListAllUntimed, which use the
// client's one-listing AllLister where it has one, against the level
// listings they replace.
func testListAll(t *testing.T, c remote.Client) {
	if files, err := remote.ListAll(t.Context(), c); err != nil || len(files) != 0 {
		t.Fatalf("ListAll of an empty replica: %s, %v", infoNames(files), err)
	}
	var want []file
	for i, level := range []int{0, 1, 2, remote.SnapshotLevel} {
		for j := range 3 {
			txid := ltx.TXID(10*i + j + 1)
			want = append(want, newFile(t, level, txid, txid+ltx.TXID(level), 1, uint64(10*i+j)))
		}
	}
	for _, f := range want {
		write(t, c, f)
	}
	files, err := remote.ListAll(t.Context(), c)
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	checkList(t, c, "ListAll", files, want)
	untimed, err := remote.ListAllUntimed(t.Context(), c)
	if err != nil {
		t.Fatalf("ListAllUntimed: %v", err)
	}
	if got, w := infoNames(untimed), fileNames(want); !slices.Equal(got, w) {
		t.Fatalf("ListAllUntimed: %s, want %s", got, w)
	}
	for i, info := range untimed {
		if info.Size != int64(len(want[i].data)) {
			t.Fatalf("ListAllUntimed: %s has size %d, want %d", want[i].name(), info.Size, len(want[i].data))
		}
	}
}

// testRequestCounts checks that the client counts what it sends, by kind
// (remote.RequestCounter): each operation adds to its kind's count.
func testRequestCounts(t *testing.T, c remote.Client) {
	cc := c.(*contractClient)
	if _, ok := cc.Client.(remote.RequestCounter); !ok {
		t.Fatalf("%T does not count its requests (remote.RequestCounter)", cc.Client)
	}
	f := newFile(t, 0, 1, 1, 1, 1)
	step := func(what string, kind remote.RequestKind, fn func() error) {
		t.Helper()
		before := cc.RequestCounts()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		d := cc.RequestCounts().Sub(before)
		if d.Of(kind) < 1 {
			t.Fatalf("%s: counted %+v, want at least one %s", what, d, kind)
		}
	}
	step("write", remote.ReqPut, func() error {
		_, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(f.data))
		return err
	})
	step("list", remote.ReqList, func() error { _, err := c.LTXFiles(t.Context(), 0, 0); return err })
	step("read", remote.ReqGet, func() error { _, err := ReadRange(t.Context(), c, 0, 1, 1, 0, 0); return err })
	step("delete", remote.ReqDelete, func() error {
		return c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
	})
}

func testTimestamp(t *testing.T, c remote.Client) {
	tests := []struct {
		name string
		ts   time.Time
	}{
		{"years ago with milliseconds", time.Date(2019, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
		{"sub-millisecond part dropped", time.Date(2022, 6, 1, 12, 0, 0, 123_456_789, time.UTC)},
		{"non-UTC zone", time.Date(2023, 1, 2, 3, 4, 5, 6_000_000, time.FixedZone("X", -7*3600))},
		{"zero milliseconds", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	var files []file
	for i, tt := range tests {
		spec := LTXSpec{MinTXID: ltx.TXID(i + 1), MaxTXID: ltx.TXID(i + 1), Timestamp: tt.ts, Seed: uint64(i)}
		f := file{level: 0, spec: spec, data: BuildLTX(t, spec)}
		write(t, c, f) // checks the returned CreatedAt
		files = append(files, f)
	}
	got := list(t, c, 0, 0)
	checkList(t, c, "list", got, files)
	for i, info := range got {
		if want := tests[i].ts.Truncate(time.Millisecond); !timestampMatches(optionsOf(c), info.CreatedAt, want) {
			t.Fatalf("%s: CreatedAt %s, want %s", tests[i].name, info.CreatedAt, want)
		}
	}
}

func testConcurrentWriters(t *testing.T, c remote.Client) {
	const writers, perWriter = 8, 4
	files := make([]file, writers*perWriter)
	for i := range files {
		files[i] = newFile(t, 0, ltx.TXID(i+1), ltx.TXID(i+1), 1+i%3, uint64(i))
	}
	errs := make(chan error, len(files))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(files); i += writers {
				f := files[i]
				if _, err := c.WriteLTXFile(t.Context(), f.level, f.spec.MinTXID, f.spec.MaxTXID, bytes.NewReader(f.data)); err != nil {
					errs <- fmt.Errorf("write %s: %w", f.name(), err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	checkList(t, c, "list", list(t, c, 0, 0), files)
	for _, f := range files {
		mustEqual(t, f.name(), readFile(t, c, f, 0, 0), f.data)
	}
}

func testLargeFile(t *testing.T, c remote.Client) {
	f := newFile(t, remote.SnapshotLevel, 1, 100, LargeFileSize/4096, 42)
	write(t, c, f)
	checkList(t, c, "list", list(t, c, f.level, 0), []file{f})
	mustEqual(t, "whole large file", readFile(t, c, f, 0, 0), f.data)
	n := int64(len(f.data))
	for _, r := range [][2]int64{
		{5<<20 - 100, 200}, // across a 5 MiB part boundary
		{8<<20 - 100, 200}, // across an 8 MiB part boundary
		{10<<20 + 3, 0},    // to the end
		{n - 1, 1},
	} {
		mustEqual(t, fmt.Sprintf("offset=%d size=%d", r[0], r[1]), readFile(t, c, f, r[0], r[1]), sliceRange(f.data, r[0], r[1]))
	}
}

func sliceRange(b []byte, offset, size int64) []byte {
	if size == 0 {
		return b[offset:]
	}
	return b[offset : offset+size]
}

var errInjected = errors.New("remotetest: injected read error")

// failingReader yields data and then fails instead of returning EOF.
func failingReader(data []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(data), errReader{})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errInjected }

func testFailedUpload(t *testing.T, c remote.Client) {
	small := newFile(t, 0, 3, 3, 4, 5)
	large := newFile(t, 1, 1, 50, (7<<20)/4096, 6)
	tests := []struct {
		name string
		f    file
		cut  int
	}{
		{"after the header", small, ltx.HeaderSize + 10},
		{"before the trailer", small, len(small.data) - 1},
		{"after the first part of a large file", large, 6 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			_, err := c.WriteLTXFile(t.Context(), f.level, f.spec.MinTXID, f.spec.MaxTXID, failingReader(f.data[:tt.cut]))
			if err == nil {
				t.Fatalf("write of %s whose reader failed after %d bytes succeeded", f.name(), tt.cut)
			}
			if infos := list(t, c, f.level, 0); len(infos) != 0 {
				t.Fatalf("failed write left %s visible", infoNames(infos))
			}
			if _, err := ReadRange(t.Context(), c, f.level, f.spec.MinTXID, f.spec.MaxTXID, 0, 0); !errors.Is(err, remote.ErrNotExist) {
				t.Fatalf("read after failed write of %s: got %v, want ErrNotExist", f.name(), err)
			}
		})
	}

	t.Run("over an existing file", func(t *testing.T) {
		old := newFile(t, 2, 7, 8, 2, 8)
		write(t, c, old)
		repl := newFile(t, 2, 7, 8, 3, 9)
		if _, err := c.WriteLTXFile(t.Context(), repl.level, 7, 8, failingReader(repl.data[:len(repl.data)/2])); err == nil {
			t.Fatal("failed overwrite succeeded")
		}
		checkList(t, c, "after failed overwrite", list(t, c, 2, 0), []file{old})
		mustEqual(t, "file after failed overwrite", readFile(t, c, old, 0, 0), old.data)
	})
}

func testCanceledContext(t *testing.T, c remote.Client) {
	f := newFile(t, 0, 1, 1, 1, 11)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.WriteLTXFile(ctx, f.level, 1, 1, bytes.NewReader(f.data)); err == nil {
		t.Fatal("WriteLTXFile with a canceled context succeeded")
	}
	if infos := list(t, c, 0, 0); len(infos) != 0 {
		t.Fatalf("write with a canceled context left %s", infoNames(infos))
	}
}
