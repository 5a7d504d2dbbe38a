package restore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/index/indextest"
	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/restore"
)

const restoreFixtureSHA256 = testsupport.FixtureSHA256

var restoreQuiet = slog.New(slog.DiscardHandler)

// restoreLatest restores c's latest state to a new file and returns its
// path and the result.
func restoreLatest(t *testing.T, c remote.Client) (string, *restore.Result) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "db")
	res, err := restore.Run(context.Background(), c, restore.Options{OutputPath: out, Logger: restoreQuiet})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

type restoreFixtureState struct {
	users  [3]float64
	events [4]float64
	maxHex string
}

// restoreQueryState runs the fixture README's queries and the integrity check.
func restoreQueryState(t *testing.T, path string) restoreFixtureState {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ic string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check: %q, %v", ic, err)
	}
	var s restoreFixtureState
	if err := db.QueryRow("select count(*), total(id), total(length(name)) from users").Scan(&s.users[0], &s.users[1], &s.users[2]); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events").
		Scan(&s.events[0], &s.events[1], &s.events[2], &s.events[3], &s.maxHex); err != nil {
		t.Fatal(err)
	}
	return s
}

func restoreSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestRestoreFixture(t *testing.T) {
	c := file.New(testsupport.FixtureReplica(t))
	tests := []struct {
		txid  ltx.TXID
		want  restoreFixtureState
		files int
	}{
		{1, restoreFixtureState{[3]float64{0, 0, 0}, [4]float64{0, 0, 0, 0}, ""}, 1},
		{5, restoreFixtureState{[3]float64{2000, 2001000, 15796}, [4]float64{1069, 662200, 2690966, 213800}, "FFB33BF0C0A7EF89"}, 2},
		{9, restoreFixtureState{[3]float64{4000, 8002000, 32561}, [4]float64{1931, 2485056, 4912375, 386200}, "FFE0B5640D7B1F57"}, 2},
		{15, restoreFixtureState{[3]float64{6000, 18003000, 49796}, [4]float64{2585, 5218136, 6556214, 517000}, "FFCA921B602616FE"}, 3},
		{0, restoreFixtureState{[3]float64{6000, 18003000, 49796}, [4]float64{2585, 5218136, 6556214, 517000}, "FFCA921B602616FE"}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("txid %d", tt.txid), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "db")
			var last, total int64
			res, err := restore.Run(context.Background(), c, restore.Options{
				OutputPath: out, TXID: tt.txid, Logger: restoreQuiet,
				Progress: func(done, tot int64) {
					if done < last {
						t.Errorf("progress went back from %d to %d", last, done)
					}
					last, total = done, tot
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			wantTXID := tt.txid
			if wantTXID == 0 {
				wantTXID = 15
			}
			if res.TXID != wantTXID || res.PageSize != 4096 || res.Files != tt.files || res.Bytes != total || last != total {
				t.Fatalf("result %+v; progress %d/%d", res, last, total)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(res.Commit)*4096 {
				t.Fatalf("output is %d bytes for %d pages", fi.Size(), res.Commit)
			}
			if _, err := os.Stat(out + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary file left: %v", err)
			}
			if wantTXID == 15 {
				if got := restoreSHA256(t, out); got != restoreFixtureSHA256 {
					t.Fatalf("latest restore sha256 %s, want source.db's %s", got, restoreFixtureSHA256)
				}
			}
			if got := restoreQueryState(t, out); got != tt.want {
				t.Fatalf("state %+v, want %+v", got, tt.want)
			}
		})
	}
}

// restoreCopyReplica copies the fixture replica to a temporary directory.
func restoreCopyReplica(t *testing.T) string {
	t.Helper()
	return testsupport.FixtureCopy(t)
}

func TestRestoreCorruptFile(t *testing.T) {
	tests := []struct {
		name   string
		file   string // under ltx/
		mutate func([]byte) []byte
		errHas string
	}{
		{"flipped byte in page data", "2/0000000000000002-0000000000000009.ltx",
			func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }, ""},
		{"flipped file checksum", "2/000000000000000a-000000000000000f.ltx",
			func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }, "checksum mismatch"},
		{"flipped byte in a snapshot whose pages are all superseded", "9/0000000000000001-0000000000000001.ltx",
			func(b []byte) []byte { b[ltx.HeaderSize+20] ^= 0x10; return b }, ""},
		{"truncated", "2/000000000000000a-000000000000000f.ltx",
			func(b []byte) []byte { return b[:len(b)-100] }, ""},
		{"truncated to half", "2/0000000000000002-0000000000000009.ltx",
			func(b []byte) []byte { return b[:len(b)/2] }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := restoreCopyReplica(t)
			p := filepath.Join(root, "ltx", tt.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, tt.mutate(b), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "db")
			_, err = restore.Run(context.Background(), file.New(root), restore.Options{OutputPath: out, Logger: restoreQuiet})
			if err == nil {
				t.Fatal("restore of a corrupt replica succeeded")
			}
			if !strings.Contains(err.Error(), filepath.Base(tt.file)) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error %q does not name %s (or lacks %q)", err, filepath.Base(tt.file), tt.errHas)
			}
			t.Logf("error: %v", err)
			for _, q := range []string{out, out + ".tmp"} {
				if _, err := os.Stat(q); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s left behind after a failed restore: %v", q, err)
				}
			}
		})
	}
}

// writeString writes s to the file p.
func writeString(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// exists reports whether a file exists at p.
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkForceReplaces: with Force, a restore replaces an existing output and
// removes its stale -wal, -shm and -journal.
func checkForceReplaces(t *testing.T, c remote.Client) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "db")
	for _, p := range []string{out, out + "-wal", out + "-shm", out + "-journal"} {
		writeString(t, p, "stale")
	}
	if _, err := restore.Run(ctx, c, restore.Options{OutputPath: out, Force: true, Logger: restoreQuiet}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{out + "-wal", out + "-shm", out + "-journal"} {
		if exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	if got := restoreSHA256(t, out); got != restoreFixtureSHA256 {
		t.Fatal("forced restore differs from source.db")
	}
}

func TestRestoreOutputHandling(t *testing.T) {
	c := file.New(testsupport.FixtureReplica(t))
	ctx := context.Background()

	t.Run("existing output is refused", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "db")
		writeString(t, out, "precious")
		_, err := restore.Run(ctx, c, restore.Options{OutputPath: out, Logger: restoreQuiet})
		if err == nil || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("error %v", err)
		}
		if b, _ := os.ReadFile(out); string(b) != "precious" {
			t.Fatal("existing output modified")
		}
	})
	t.Run("stale WAL beside a new output is refused", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "db")
		writeString(t, out+"-wal", "stale")
		_, err := restore.Run(ctx, c, restore.Options{OutputPath: out, Logger: restoreQuiet})
		if err == nil || !strings.Contains(err.Error(), out+"-wal") {
			t.Fatalf("error %v", err)
		}
		if exists(out) {
			t.Fatal("output created")
		}
	})
	t.Run("force replaces output and removes WAL and SHM", func(t *testing.T) { checkForceReplaces(t, c) })
	t.Run("stale temporary file is replaced", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "db")
		writeString(t, out+".tmp", strings.Repeat("x", 5<<20))
		if _, err := restore.Run(ctx, c, restore.Options{OutputPath: out, Logger: restoreQuiet}); err != nil {
			t.Fatal(err)
		}
		if got := restoreSHA256(t, out); got != restoreFixtureSHA256 {
			t.Fatal("restore over a stale .tmp differs from source.db")
		}
	})
	t.Run("output is a directory", func(t *testing.T) {
		out := t.TempDir()
		if _, err := restore.Run(ctx, c, restore.Options{OutputPath: out, Force: true, Logger: restoreQuiet}); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("empty replica", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "db")
		_, err := restore.Run(ctx, indextest.NewMem(), restore.Options{OutputPath: out, Logger: restoreQuiet})
		if !errors.Is(err, index.ErrNoSnapshot) || exists(out) || exists(out+".tmp") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("TXID outside history", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "db")
		_, err := restore.Run(ctx, c, restore.Options{OutputPath: out, TXID: 99, Logger: restoreQuiet})
		if !errors.Is(err, index.ErrNotAvailable) || !strings.Contains(err.Error(), "000000000000000f") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "db")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := restore.Run(cctx, c, restore.Options{OutputPath: out, Logger: restoreQuiet}); !errors.Is(err, context.Canceled) || exists(out) || exists(out+".tmp") {
			t.Fatalf("error %v", err)
		}
	})
}

// restoreSynthetic builds a replica in memory: a snapshot at TXID 1 with pages
// 1..n, then one L0 file per later TXID changing a few pages, with header
// timestamps one second apart. It returns the expected database at each TXID.
// Only the last state is kept when txids is large, to keep the test cheap.
func restoreSynthetic(t *testing.T, rng *rand.Rand, pageSize uint32, n uint32, txids int) (*indextest.Mem, map[ltx.TXID][]byte) {
	t.Helper()
	c := indextest.NewMem()
	states := map[ltx.TXID][]byte{}
	db := make([]byte, int(n)*int(pageSize))
	var pages []indextest.Page
	for p := uint32(1); p <= n; p++ {
		d := indextest.PageData(pageSize, 1, p)
		copy(db[(p-1)*pageSize:], d)
		pages = append(pages, indextest.Page{Pgno: p, Data: d})
	}
	put := func(level int, hdr ltx.Header, pages []indextest.Page) {
		b, err := indextest.Encode(hdr, pages)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(level, b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	put(9, ltx.Header{PageSize: pageSize, Commit: n, MinTXID: 1, MaxTXID: 1}, pages)
	states[1] = bytes.Clone(db)
	commit := n
	for txid := ltx.TXID(2); txid <= ltx.TXID(txids); txid++ {
		// Grow or shrink by a page now and then.
		switch rng.IntN(4) {
		case 0:
			commit++
			db = append(db, make([]byte, pageSize)...)
		case 1:
			if commit > 2 {
				commit--
				db = db[:int(commit)*int(pageSize)]
			}
		}
		set := map[uint32]bool{commit: true}
		for i := 0; i < 3; i++ {
			set[1+uint32(rng.IntN(int(commit)))] = true
		}
		var changed []indextest.Page
		for p := uint32(1); p <= commit; p++ {
			if set[p] {
				d := indextest.PageData(pageSize, txid, p)
				copy(db[(p-1)*pageSize:], d)
				changed = append(changed, indextest.Page{Pgno: p, Data: d})
			}
		}
		put(0, ltx.Header{PageSize: pageSize, Commit: commit, MinTXID: txid, MaxTXID: txid}, changed)
		if txids <= 100 || txid == ltx.TXID(txids) {
			states[txid] = bytes.Clone(db)
		}
	}
	return c, states
}

func TestRestoreSynthetic(t *testing.T) {
	rng := testsupport.Rand(t, 4)
	c, states := restoreSynthetic(t, rng, 1024, 300, 20)
	ctx := context.Background()
	// The restoreSynthetic header timestamps are 2026-01-01 plus TXID seconds.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		txid ltx.TXID
		ts   time.Time
		want ltx.TXID
		par  int
	}{
		{"latest", 0, time.Time{}, 20, 0},
		{"txid 1", 1, time.Time{}, 1, 1},
		{"txid 7", 7, time.Time{}, 7, 8},
		{"time between 12 and 13", 0, base.Add(12*time.Second + 300*time.Millisecond), 12, 2},
		{"time exactly at 13", 0, base.Add(13 * time.Second), 13, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "db")
			res, err := restore.Run(ctx, c, restore.Options{OutputPath: out, TXID: tt.txid, Timestamp: tt.ts, Parallelism: tt.par, Logger: restoreQuiet})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if res.TXID != tt.want || !bytes.Equal(got, states[tt.want]) {
				t.Fatalf("restored TXID %d (want %d), %d bytes (want %d), content equal: %v", res.TXID, tt.want, len(got), len(states[tt.want]), bytes.Equal(got, states[tt.want]))
			}
			if !res.Timestamp.Equal(base.Add(time.Duration(tt.want) * time.Second)) {
				t.Errorf("timestamp %s", res.Timestamp)
			}
		})
	}
}

// A database larger than the lock page offset: the lock page stays a hole
// of zeros and pages beyond it land at the right offsets.
func TestRestoreLockPage(t *testing.T) {
	const ps = 512
	lock := ltx.LockPgno(ps)
	c := indextest.NewMem()
	snap := []indextest.Page{{Pgno: 1, Data: indextest.PageData(ps, 1, 1)}, {Pgno: 2, Data: indextest.PageData(ps, 1, 2)}}
	after := []indextest.Page{{Pgno: lock - 1, Data: indextest.PageData(ps, 2, lock-1)}, {Pgno: lock + 1, Data: indextest.PageData(ps, 2, lock+1)}}
	for _, f := range []struct {
		level int
		hdr   ltx.Header
		pages []indextest.Page
	}{
		{9, ltx.Header{PageSize: ps, Commit: 2, MinTXID: 1, MaxTXID: 1}, snap},
		{0, ltx.Header{PageSize: ps, Commit: lock + 1, MinTXID: 2, MaxTXID: 2}, after},
	} {
		b, err := indextest.Encode(f.hdr, f.pages)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(f.level, b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	out, res := restoreLatest(t, c)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if res.Commit != lock+1 || st.Size() != int64(lock+1)*ps {
		t.Fatalf("commit %d, size %d", res.Commit, st.Size())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Blocks*512 > 1<<20 {
		t.Errorf("output uses %d bytes on disk: not sparse", sys.Blocks*512)
	}
	check := func(pgno uint32, want []byte) {
		t.Helper()
		got := make([]byte, ps)
		if _, err := f.ReadAt(got, int64(pgno-1)*ps); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("page %d differs", pgno)
		}
	}
	check(1, snap[0].Data)
	check(2, snap[1].Data)
	check(3, make([]byte, ps))
	check(lock-1, after[0].Data)
	check(lock, make([]byte, ps))
	check(lock+1, after[1].Data)
}

// A file of several read chunks, with transient read failures: chunks are
// retried and reassembled in order.
func TestRestoreLargeFileWithRetries(t *testing.T) {
	rng := testsupport.Rand(t, 5)
	const ps, n = 4096, 3000 // ~12 MiB of incompressible pages: 3 chunks
	var pages []indextest.Page
	want := make([]byte, 0, n*ps)
	for p := uint32(1); p <= n; p++ {
		d := make([]byte, ps)
		for i := 0; i < ps; i += 8 {
			binary.LittleEndian.PutUint64(d[i:], rng.Uint64())
		}
		pages = append(pages, indextest.Page{Pgno: p, Data: d})
		want = append(want, d...)
	}
	b, err := indextest.Encode(ltx.Header{PageSize: ps, Commit: n, MinTXID: 1, MaxTXID: 1}, pages)
	if err != nil {
		t.Fatal(err)
	}
	c := indextest.NewMem()
	if _, err := c.Put(9, b, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int64
	c.OpenHook = func(level int, minTXID, maxTXID ltx.TXID, off, size int64) error {
		// Fail the first read of each chunk after the first.
		if off > 0 && off%(4<<20) == 0 && failed.Add(1) <= 2 {
			return fmt.Errorf("injected failure at %d", off)
		}
		return nil
	}
	out, res := restoreLatest(t, c)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || res.Bytes != int64(len(b)) {
		t.Fatalf("restored %d bytes, equal %v; read %d of %d", len(got), bytes.Equal(got, want), res.Bytes, len(b))
	}
	if failed.Load() < 2 {
		t.Fatalf("only %d injected failures hit", failed.Load())
	}
}

// TestRestoreSpeed restores the file replica at $LITESTREAM_RESTORE_BENCH_REPLICA
// (skipped when unset) into $LITESTREAM_RESTORE_BENCH_OUT (default: a test
// temporary directory) and logs the throughput, for comparison with
// `dd bs=1M conv=fsync` of the source database. With
// $LITESTREAM_RESTORE_BENCH_DB set, the output must equal that file.
func TestRestoreSpeed(t *testing.T) {
	replica := os.Getenv("LITESTREAM_RESTORE_BENCH_REPLICA")
	if replica == "" {
		t.Skip("LITESTREAM_RESTORE_BENCH_REPLICA not set")
	}
	dir := os.Getenv("LITESTREAM_RESTORE_BENCH_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	out := filepath.Join(dir, "restored.db")
	start := time.Now()
	res, err := restore.Run(context.Background(), file.New(replica), restore.Options{OutputPath: out, Force: true, Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	size := int64(res.Commit) * int64(res.PageSize)
	t.Logf("restored %d MiB (read %d MiB of LTX from %d files) in %s: %.0f MiB/s",
		size>>20, res.Bytes>>20, res.Files, d, float64(size)/(1<<20)/d.Seconds())
	if src := os.Getenv("LITESTREAM_RESTORE_BENCH_DB"); src != "" {
		if got, want := restoreSHA256(t, out), restoreSHA256(t, src); got != want {
			t.Fatalf("restored sha256 %s, source %s", got, want)
		}
	}
	if os.Getenv("LITESTREAM_RESTORE_BENCH_OUT") != "" {
		os.Remove(out)
	}
}

// A long chain of small L0 files restores quickly and exactly.
func TestRestoreManyFiles(t *testing.T) {
	rng := testsupport.Rand(t, 7)
	c, states := restoreSynthetic(t, rng, 4096, 2000, 800)
	start := time.Now()
	out, res := restoreLatest(t, c)
	t.Logf("restored %d files in %s", res.Files, time.Since(start))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.TXID != 800 || res.Files != 800 || !bytes.Equal(got, states[800]) {
		t.Fatalf("restored TXID %d from %d files; content equal: %v", res.TXID, res.Files, bytes.Equal(got, states[800]))
	}
}
