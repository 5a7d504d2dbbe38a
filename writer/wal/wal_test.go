package wal_test

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/litestream-go/litestream/writer/wal"
)

const pageSize = 512

// txn is one transaction of a constructed log: the pages it writes and the
// database size after it.
type txn struct {
	pgnos  []uint32
	commit uint32
}

// build constructs a log with the given header and transactions. Page n of
// transaction i is filled with byte(n+i) so content differs between versions.
// It returns the log and the offsets where each transaction ends.
func build(h wal.Header, txns []txn) ([]byte, []int64) {
	b := wal.AppendHeader(nil, h)
	hdr, err := wal.ParseHeader(b)
	if err != nil {
		panic(err)
	}
	sum := hdr.Checksum
	var ends []int64
	for i, tx := range txns {
		for j, pgno := range tx.pgnos {
			commit := uint32(0)
			if j == len(tx.pgnos)-1 {
				commit = tx.commit
			}
			page := bytes.Repeat([]byte{byte(int(pgno) + i)}, int(h.PageSize))
			b, sum = wal.AppendFrame(b, h, sum, pgno, commit, page)
		}
		ends = append(ends, int64(len(b)))
	}
	return b, ends
}

type scanned struct {
	frames []wal.Frame
	pos    wal.Position
}

func scan(t *testing.T, b []byte, start *wal.Position) scanned {
	t.Helper()
	h, err := wal.ParseHeader(b)
	if err != nil {
		t.Fatalf("parse header: %v", err)
	}
	st := wal.Start(h)
	if start != nil {
		st = *start
	}
	var s scanned
	s.pos, err = wal.Scan(bytes.NewReader(b), h, st, func(f wal.Frame) error {
		s.frames = append(s.frames, f)
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return s
}

func pgnos(frames []wal.Frame) []uint32 {
	var out []uint32
	for _, f := range frames {
		out = append(out, f.Pgno)
	}
	return out
}

func TestScan(t *testing.T) {
	txns := []txn{
		{pgnos: []uint32{1, 2, 3}, commit: 3},
		{pgnos: []uint32{2}, commit: 3},
		{pgnos: []uint32{4, 1}, commit: 4},
	}
	frame := int64(wal.FrameHeaderSize + pageSize)
	for _, magic := range []uint32{wal.MagicLE, wal.MagicBE} {
		h := wal.Header{Magic: magic, Version: wal.Version, PageSize: pageSize, CheckpointSeq: 7, Salt1: 0x11223344, Salt2: 0xdeadbeef}
		full, ends := build(h, txns)
		// An uncommitted trailing transaction: frames without a commit frame.
		uncommitted, _ := build(h, append(txns, txn{pgnos: []uint32{5, 6}, commit: 0}))

		// flip returns a copy of full with one byte changed.
		flip := func(off int64) []byte {
			c := bytes.Clone(full)
			c[off] ^= 0xff
			return c
		}
		// resalt returns a copy whose frame at offset off carries other salts
		// with a checksum that is otherwise correct: a frame of another
		// generation.
		resalt := func(off int64) []byte {
			c := bytes.Clone(full)
			binary.BigEndian.PutUint32(c[off+8:], h.Salt1-1)
			return c
		}
		tests := []struct {
			name    string
			log     []byte
			want    []uint32
			wantEnd int64
			commit  uint32
		}{
			{"valid chain", full, []uint32{1, 2, 3, 2, 4, 1}, ends[2], 4},
			{"torn tail in last frame", full[:len(full)-100], []uint32{1, 2, 3, 2}, ends[1], 3},
			{"torn tail in frame header", full[:ends[1]+10], []uint32{1, 2, 3, 2}, ends[1], 3},
			{"uncommitted tail ignored", uncommitted, []uint32{1, 2, 3, 2, 4, 1}, ends[2], 4},
			{"bad checksum in page", flip(ends[0] + wal.FrameHeaderSize + 17), []uint32{1, 2, 3}, ends[0], 3},
			{"bad checksum in first txn", flip(wal.HeaderSize + frame + 30), nil, wal.HeaderSize, 0},
			{"wrong salt", resalt(ends[1]), []uint32{1, 2, 3, 2}, ends[1], 3},
			{"header only", full[:wal.HeaderSize], nil, wal.HeaderSize, 0},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%x/%s", magic, tt.name), func(t *testing.T) {
				s := scan(t, tt.log, nil)
				if got := pgnos(s.frames); fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("frames = %v, want %v", got, tt.want)
				}
				if s.pos.Offset != tt.wantEnd || s.pos.Commit != tt.commit {
					t.Errorf("position = %+v, want offset %d commit %d", s.pos, tt.wantEnd, tt.commit)
				}
				if want := (tt.wantEnd - wal.HeaderSize) / frame; s.pos.Frames != want {
					t.Errorf("frames counted = %d, want %d", s.pos.Frames, want)
				}
				for i, f := range s.frames {
					if want := int64(wal.HeaderSize) + int64(i)*frame; f.Offset != want {
						t.Errorf("frame %d offset = %d, want %d", i, f.Offset, want)
					}
				}
			})
		}

		t.Run(fmt.Sprintf("%x/resume from position", magic), func(t *testing.T) {
			first := scan(t, full[:ends[0]], nil)
			rest := scan(t, full, &first.pos)
			if got := pgnos(rest.frames); fmt.Sprint(got) != "[2 4 1]" {
				t.Errorf("frames after resume = %v", got)
			}
			if rest.pos.Offset != ends[2] || rest.pos.Frames != 6 {
				t.Errorf("position = %+v", rest.pos)
			}
			// A wrong starting checksum rejects the next frame.
			bad := first.pos
			bad.Checksum.S1++
			if s := scan(t, full, &bad); len(s.frames) != 0 || s.pos != bad {
				t.Errorf("scan from a wrong checksum accepted frames: %+v", s)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	h := wal.Header{Magic: wal.MagicBE, Version: wal.Version, PageSize: 4096, CheckpointSeq: 1, Salt1: 1, Salt2: 2}
	good := wal.AppendHeader(nil, h)
	mod := func(off int, v uint32) []byte {
		c := bytes.Clone(good)
		binary.BigEndian.PutUint32(c[off:], v)
		return c
	}
	for _, tt := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"valid", good, true},
		{"short", good[:31], false},
		{"magic", mod(0, 0x377f0684), false},
		{"version", mod(4, 3007001), false},
		{"page size", mod(8, 1000), false},
		{"checksum", mod(28, 0), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wal.ParseHeader(tt.b)
			if tt.ok {
				if err != nil || got.Salt2 != 2 || got.PageSize != 4096 || !got.BigEndian() {
					t.Fatalf("ParseHeader = %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, wal.ErrInvalidHeader) {
				t.Fatalf("ParseHeader error = %v, want ErrInvalidHeader", err)
			}
		})
	}
}

// realDB creates a WAL-mode database without automatic checkpoints, with one
// table and 21 committed transactions, and returns it, its path and a
// function that executes a statement or fails the test.
func realDB(t *testing.T) (*sql.DB, string, func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	mustExec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`PRAGMA wal_autocheckpoint=0`)
	mustExec(`CREATE TABLE t(x)`)
	for i := 0; i < 20; i++ {
		mustExec(fmt.Sprintf(`INSERT INTO t VALUES(randomblob(%d))`, 300+i*50))
	}
	return db, path, mustExec
}

// TestScanRealSQLite checks the parser against a log written by SQLite:
// every committed transaction is found, and the last commit frame carries
// the database size SQLite reports.
func TestScanRealSQLite(t *testing.T) {
	db, path, _ := realDB(t)
	var pageCount uint32
	if err := db.QueryRow(`PRAGMA page_count`).Scan(&pageCount); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	s := scan(t, b, nil)
	if s.pos.Offset != int64(len(b)) {
		t.Errorf("scan ended at %d, WAL is %d bytes", s.pos.Offset, len(b))
	}
	if s.pos.Commit != pageCount {
		t.Errorf("commit = %d, page_count = %d", s.pos.Commit, pageCount)
	}
	commits := 0
	for _, f := range s.frames {
		if f.Commit != 0 {
			commits++
		}
	}
	if commits != 21 {
		t.Errorf("found %d commits, want 21", commits)
	}
	// A torn copy: cut in the middle of the last frame.
	torn := scan(t, b[:len(b)-7], nil)
	if torn.pos.Offset >= s.pos.Offset || len(torn.frames) >= len(s.frames) {
		t.Errorf("torn log not cut short: %+v", torn.pos)
	}
}

// TestIndexRealSQLite checks ParseIndex against SQLite's own shared memory:
// the published end of the log equals the end of the checksum chain, with
// its checksum, salts, page size and database size, and a checkpoint's
// progress shows.
func TestIndexRealSQLite(t *testing.T) {
	db, path, mustExec := realDB(t)
	index := func() wal.Index {
		t.Helper()
		b, err := os.ReadFile(path + "-shm")
		if err != nil {
			t.Fatal(err)
		}
		x, err := wal.ParseIndex(b, binary.NativeEndian)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	x := index()
	b, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	h, err := wal.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	s := scan(t, b, nil)
	if x.PageSize != 4096 || x.MaxFrame != uint32(s.pos.Frames) || x.End() != s.pos.Offset ||
		x.FrameSum != s.pos.Checksum || x.Pages != s.pos.Commit ||
		x.Salt1 != h.Salt1 || x.Salt2 != h.Salt2 || x.BigEndian != h.BigEndian() {
		t.Errorf("index %+v; log: header %+v, end %+v", x, h, s.pos)
	}
	if x.Backfilled != 0 {
		t.Errorf("backfilled %d before any checkpoint", x.Backfilled)
	}
	var busy, logN, done int
	if err := db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logN, &done); err != nil {
		t.Fatal(err)
	}
	if x := index(); x.Backfilled != uint32(done) || done != logN || x.MaxFrame != uint32(logN) {
		t.Errorf("after checkpoint: index %+v, checkpoint log=%d done=%d", x, logN, done)
	}
	// The next write restarts the log: a new generation from frame 1.
	mustExec(`INSERT INTO t VALUES(1)`)
	if x := index(); x.Salt1 != h.Salt1+1 || x.MaxFrame == 0 || x.MaxFrame > 3 {
		t.Errorf("after restart: index %+v, old salts %08x/%08x", x, h.Salt1, h.Salt2)
	}

	// A round trip through AppendIndex, and the ways a header is rejected.
	enc := wal.AppendIndex(nil, x, binary.NativeEndian)
	if got, err := wal.ParseIndex(enc, binary.NativeEndian); err != nil || got != x {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, x)
	}
	big := x
	big.PageSize = 65536
	if got, err := wal.ParseIndex(wal.AppendIndex(nil, big, binary.NativeEndian), binary.NativeEndian); err != nil || got.PageSize != 65536 {
		t.Errorf("64 KiB pages: %+v, %v", got, err)
	}
	for name, mutate := range map[string]func([]byte){
		"copies differ": func(b []byte) { b[16]++ }, // a torn update
		"checksum":      func(b []byte) { b[16]++; b[48+16]++ },
		"not init":      func(b []byte) { b[12] = 0; b[48+12] = 0 },
		"short":         nil,
	} {
		bad := bytes.Clone(enc)
		if mutate == nil {
			bad = bad[:wal.IndexReadSize-1]
		} else {
			mutate(bad)
		}
		if _, err := wal.ParseIndex(bad, binary.NativeEndian); !errors.Is(err, wal.ErrIndexUnreadable) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}
