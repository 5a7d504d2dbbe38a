package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

func TestExactReader(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name    string
		body    []byte
		n       int64
		want    string
		wantErr string
	}{
		{"exact", data, 10, "0123456789", ""},
		{"short", data[:5], 10, "01234", "unexpected EOF"},
		{"long", data, 5, "01234", "more bytes than the requested range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ExactReader(io.NopCloser(bytes.NewReader(tt.body)), tt.n, "obj")
			got, err := io.ReadAll(r)
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestRangeEnd(t *testing.T) {
	tests := []struct {
		off, size, file, end int64
		ok                   bool
	}{
		{0, 0, 10, 10, true},
		{3, 0, 10, 10, true},
		{9, 1, 10, 10, true},
		{9, 2, 10, 0, false},
		{10, 0, 10, 0, false},
		{0, 11, 10, 0, false},
		{0, 0, 0, 0, false},
	}
	for _, tt := range tests {
		end, err := RangeEnd(tt.off, tt.size, tt.file)
		if (err == nil) != tt.ok || end != tt.end {
			t.Errorf("RangeEnd(%d,%d,%d) = %d, %v", tt.off, tt.size, tt.file, end, err)
		}
	}
}

func TestRedact(t *testing.T) {
	base := fmt.Errorf("GET https://acct.blob/c/x?sig=SECRETSIG&sv=1: %w", syscall.ECONNRESET)
	err := Redact(base, "SECRETSIG", "", "ab")
	if strings.Contains(err.Error(), "SECRETSIG") || !strings.Contains(err.Error(), "sig=xxxxx") {
		t.Fatalf("got %q", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal("chain lost")
	}
	if Redact(base, "absent") != base || Redact(nil, "x") != nil {
		t.Fatal("unneeded wrap")
	}
}

func TestSpool(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 1000)
	for _, limit := range []int64{100, 8000, 1 << 20} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			s, err := NewSpool(t.Context(), bytes.NewReader(data), limit, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Size() != int64(len(data)) || (s.file != nil) != (limit < int64(len(data))) {
				t.Fatalf("size %d file %v", s.Size(), s.file != nil)
			}
			for range 2 { // readers are independent and restartable
				got, err := io.ReadAll(s.Reader())
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("content differs: %v", err)
				}
			}
		})
	}
	_, err := NewSpool(t.Context(), io.MultiReader(bytes.NewReader(data), iotestErr{}), 100, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing reader: %v", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestReadHeader(t *testing.T) {
	ts := time.Date(2020, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 3, MaxTXID: 4, Timestamp: ts})
	got, r, err := ReadHeader(context.Background(), bytes.NewReader(data), 3, 4)
	if err != nil || !got.Equal(ts) || got.Location() != time.UTC {
		t.Fatalf("got %v %v", got, err)
	}
	all, _ := io.ReadAll(r)
	if !bytes.Equal(all, data) {
		t.Fatal("reader lost the header")
	}
	if _, _, err := ReadHeader(context.Background(), bytes.NewReader(data), 3, 5); err == nil || !strings.Contains(err.Error(), "TXIDs") {
		t.Fatalf("mismatch: %v", err)
	}
	if _, _, err := ReadHeader(context.Background(), bytes.NewReader(data[:20]), 3, 4); err == nil {
		t.Fatal("short header accepted")
	}
	// An opaque (encrypted) upload: nothing is parsed, the creation time is
	// the context's and every byte passes through.
	opaque := []byte("age-encryption.org/v1\nnot an LTX header")
	got, r, err = ReadHeader(remote.WithOpaqueWrite(context.Background(), ts), bytes.NewReader(opaque), 3, 4)
	if err != nil || !got.Equal(ts) {
		t.Fatalf("opaque write: %v %v", got, err)
	}
	if all, _ := io.ReadAll(r); !bytes.Equal(all, opaque) {
		t.Fatal("opaque write: bytes changed")
	}
	if err := CheckWrite(0, 0, 1); err == nil {
		t.Fatal("TXID 0 accepted")
	}
	if err := CheckWrite(10, 1, 1); err == nil {
		t.Fatal("level 10 accepted")
	}
	if s := FormatTimestamp(ts.In(time.FixedZone("X", 3600))); s != "2020-01-02T03:04:05.678Z" {
		t.Fatalf("FormatTimestamp = %s", s)
	}
	if p, ok := ParseTimestamp("2020-01-02T04:04:05.678+01:00"); !ok || !p.Equal(ts) || p.Location() != time.UTC {
		t.Fatalf("ParseTimestamp = %v %v", p, ok)
	}
}

func testFail(op, key string, err error) error { return fmt.Errorf("store: %s %q: %w", op, key, err) }

func TestStartWrite(t *testing.T) {
	ts := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 3, MaxTXID: 4, Timestamp: ts})

	var got []byte
	info, err := WriteSpooled(t.Context(), testFail, "k", 1, 3, 4, bytes.NewReader(data), 0, func(ctx context.Context, spool *Spool, createdAt time.Time) error {
		if !createdAt.Equal(ts) {
			t.Errorf("createdAt %v, want %v", createdAt, ts)
		}
		var err error
		got, err = io.ReadAll(spool.Reader())
		return err
	})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("spooled %d bytes (want %d), err %v", len(got), len(data), err)
	}
	if want := (ltx.FileInfo{Level: 1, MinTXID: 3, MaxTXID: 4, Size: int64(len(data)), CreatedAt: ts}); *info != want {
		t.Fatalf("info %+v, want %+v", *info, want)
	}
	_, err = WriteSpooled(t.Context(), testFail, "k", 1, 3, 4, bytes.NewReader(data), 0, func(context.Context, *Spool, time.Time) error {
		return errors.New("boom")
	})
	if err == nil || err.Error() != `store: write "k": boom` {
		t.Fatalf("failed send: %v", err)
	}
	if tmp := TempPath("a/b/f.ltx"); !strings.HasPrefix(tmp, "a/b/.f.ltx.tmp-") || len(tmp) != len("a/b/.f.ltx.tmp-")+16 || tmp == TempPath("a/b/f.ltx") {
		t.Fatalf("TempPath = %q", tmp)
	}

	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tt := range []struct {
		name         string
		ctx          context.Context
		level        int
		min, max     ltx.TXID
		wantInErrMsg string
	}{
		{"bad level", t.Context(), 10, 3, 4, "invalid level"},
		{"bad range", t.Context(), 1, 4, 3, "invalid TXID range"},
		{"canceled", canceled, 1, 3, 4, "context canceled"},
		{"header TXIDs differ", t.Context(), 1, 3, 5, "LTX header has TXIDs"},
	} {
		_, _, err := StartWrite(tt.ctx, testFail, "k", tt.level, tt.min, tt.max, bytes.NewReader(data))
		if err == nil || !strings.HasPrefix(err.Error(), `store: write "k": `) || !strings.Contains(err.Error(), tt.wantInErrMsg) {
			t.Errorf("%s: err %v", tt.name, err)
		}
	}
	if err := CheckOpen(testFail, "k", 1, -1, 0); err == nil || !strings.HasPrefix(err.Error(), `store: open "k": invalid range`) {
		t.Errorf("CheckOpen negative offset: %v", err)
	}
	if err := CheckOpen(testFail, "k", 9, 0, 0); err != nil {
		t.Errorf("CheckOpen: %v", err)
	}
}

func TestDeleteParallel(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e", "f"}
	var mu sync.Mutex
	seen := map[string]bool{}
	var running, most atomic.Int32
	err := DeleteParallel(t.Context(), keys, 2, func(ctx context.Context, key string) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		mu.Lock()
		seen[key] = true
		mu.Unlock()
		if key == "b" || key == "e" {
			return testFail("delete", key, errors.New("boom"))
		}
		return nil
	})
	if len(seen) != len(keys) || most.Load() > 2 {
		t.Fatalf("deleted %v, at most %d at once", seen, most.Load())
	}
	if err == nil || !strings.Contains(err.Error(), `delete "b": boom`) || !strings.Contains(err.Error(), `delete "e": boom`) {
		t.Fatalf("err %v", err)
	}
}

func TestDeleteEach(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var done []string
	err := DeleteEach(ctx, testFail, []string{"a", "b", "c"}, func(ctx context.Context, key string) error {
		done = append(done, key)
		if key == "b" {
			cancel()
			return testFail("delete", key, errors.New("boom"))
		}
		return nil
	})
	if strings.Join(done, ",") != "a,b" {
		t.Fatalf("deleted %v", done)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `delete "b": boom`) || !strings.Contains(err.Error(), `delete "c": context canceled`) {
		t.Fatalf("err %v", err)
	}
}

func TestListLevel(t *testing.T) {
	keys := remote.Keys{Root: "r", Layout: remote.LayoutLTX}
	files := []remote.FileID{{Level: 2, MinTXID: 5, MaxTXID: 6}, {Level: 1, MinTXID: 3, MaxTXID: 3}, {Level: 1, MinTXID: 1, MaxTXID: 2}, {Level: 2, MinTXID: 1, MaxTXID: 4}}
	var prefixes []string
	list := func(ctx context.Context, prefix string, want func(remote.FileID) bool) ([]*ltx.FileInfo, error) {
		prefixes = append(prefixes, prefix)
		var infos []*ltx.FileInfo
		for _, id := range files {
			if want(id) {
				infos = append(infos, &ltx.FileInfo{Level: id.Level, MinTXID: id.MinTXID, MaxTXID: id.MaxTXID})
			}
		}
		return infos, nil
	}
	ids := func(infos []*ltx.FileInfo) string {
		var out []string
		for _, info := range infos {
			out = append(out, fmt.Sprintf("%d:%d-%d", info.Level, info.MinTXID, info.MaxTXID))
		}
		return strings.Join(out, " ")
	}
	got, err := ListLevel(t.Context(), testFail, keys, list, 2, 2)
	if err != nil || ids(got) != "2:5-6" {
		t.Fatalf("ListLevel(2, seek 2) = %v, %v", ids(got), err)
	}
	got, err = ListLevel(t.Context(), testFail, keys, list, 1, 0)
	if err != nil || ids(got) != "1:1-2 1:3-3" {
		t.Fatalf("ListLevel(1) = %v, %v", ids(got), err)
	}
	got, err = ListEvery(t.Context(), keys, list)
	if err != nil || ids(got) != "1:1-2 1:3-3 2:1-4 2:5-6" {
		t.Fatalf("ListEvery = %v, %v", ids(got), err)
	}
	if want := []string{"r/ltx/2/", "r/ltx/1/", "r/ltx/"}; fmt.Sprint(prefixes) != fmt.Sprint(want) {
		t.Fatalf("listed %q, want %q", prefixes, want)
	}
	if _, err := ListLevel(t.Context(), testFail, keys, list, 10, 0); err == nil || !strings.HasPrefix(err.Error(), `store: list "r/ltx/10/": invalid level`) {
		t.Fatalf("ListLevel(10): %v", err)
	}
}

func TestDeleteFiles(t *testing.T) {
	keys := remote.Keys{Root: "r", Layout: remote.LayoutLTX}
	var deleted []string
	del := func(ctx context.Context, k []string) error {
		deleted = append(deleted, k...)
		return testFail("delete", k[0], errors.New("boom"))
	}
	files := []*ltx.FileInfo{{Level: 1, MinTXID: 1, MaxTXID: 2}, nil, {Level: 11, MinTXID: 3, MaxTXID: 3}}
	err := DeleteFiles(t.Context(), files, keys.File, testFail, del)
	if fmt.Sprint(deleted) != "[r/ltx/1/0000000000000001-0000000000000002.ltx]" {
		t.Fatalf("deleted %q", deleted)
	}
	if err == nil || !strings.Contains(err.Error(), "invalid level 11") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v", err)
	}
	if err := DeleteFiles(t.Context(), []*ltx.FileInfo{nil}, keys.File, testFail, del); err != nil || len(deleted) != 1 {
		t.Fatalf("no keys: %v, deleted %q", err, deleted)
	}
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return fmt.Sprintf("status %d", e.code) }

func TestTransientStatus(t *testing.T) {
	status := func(e *statusErr) int { return e.code }
	other := errors.New("other")
	isOther := func(err error) bool { return errors.Is(err, other) }
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("get: %w", &statusErr{503}), true},
		{fmt.Errorf("get: %w", &statusErr{404}), false},
		{fmt.Errorf("get: %w: %w", &statusErr{404}, other), false}, // the status decides
		{io.EOF, true},
		{syscall.ECONNRESET, true},
		{other, true},
		{errors.New("unknown"), false},
		{context.Canceled, false},
		{retry.Permanent(&statusErr{503}), false},
	} {
		if got := TransientStatus(tt.err, status, isOther); got != tt.want {
			t.Errorf("TransientStatus(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
