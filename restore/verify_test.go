package restore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index/indextest"
	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/restore"
)

// The checks restore makes while it streams a file (decode.go), against
// what ltx.Decoder checks.

// restoreEncodeMixed writes a valid LTX file by hand in which pages listed in old
// use the LZ4 frame encoding of ltx before v0.5.2 and the rest the block
// encoding, the way ltx.Decoder expects both.
func restoreEncodeMixed(t *testing.T, hdr ltx.Header, pages []indextest.Page, old map[uint32]bool) []byte {
	t.Helper()
	hdr.Version = ltx.Version
	hdr.Flags |= ltx.HeaderFlagNoChecksum
	var buf bytes.Buffer
	h := crc64.New(crc64.MakeTable(crc64.ISO))
	w := io.MultiWriter(&buf, h)
	hb, _ := hdr.MarshalBinary()
	w.Write(hb)
	var idx []byte
	for _, p := range pages {
		off := buf.Len()
		ph := ltx.PageHeader{Pgno: p.Pgno}
		if old[p.Pgno] {
			b, _ := ph.MarshalBinary()
			w.Write(b)
			var z bytes.Buffer
			zw := lz4.NewWriter(&z)
			// Small blocks: the reader allocates a block-sized buffer per
			// frame, and the 4 MB default makes the test slow.
			if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				t.Fatal(err)
			}
			zw.Write(p.Data)
			zw.Close()
			buf.Write(z.Bytes()) // compressed bytes are not hashed
			h.Write(p.Data)
		} else {
			ph.Flags = ltx.PageHeaderFlagSize
			b, _ := ph.MarshalBinary()
			w.Write(b)
			comp := make([]byte, lz4.CompressBlockBound(len(p.Data)))
			n, err := lz4.CompressBlock(p.Data, comp, nil)
			if err != nil || n == 0 {
				t.Fatalf("compress: %d, %v", n, err)
			}
			w.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
			buf.Write(comp[:n])
			h.Write(p.Data)
		}
		idx = binary.AppendUvarint(idx, uint64(p.Pgno))
		idx = binary.AppendUvarint(idx, uint64(off))
		idx = binary.AppendUvarint(idx, uint64(buf.Len()-off))
	}
	w.Write(make([]byte, ltx.PageHeaderSize))
	idx = binary.AppendUvarint(idx, 0)
	w.Write(idx)
	w.Write(binary.BigEndian.AppendUint64(nil, uint64(len(idx))))
	w.Write(make([]byte, 8)) // post-apply checksum: none
	buf.Write(binary.BigEndian.AppendUint64(nil, uint64(ltx.ChecksumFlag|ltx.Checksum(h.Sum64()))))
	if err := ltx.NewDecoder(bytes.NewReader(buf.Bytes())).Verify(); err != nil {
		t.Fatalf("hand-encoded file does not verify: %v", err)
	}
	return buf.Bytes()
}

// Files in the older LZ4 frame page encoding, alone or mixed with block
// pages, restore.
func TestRestoreFrameEncoding(t *testing.T) {
	const ps = 4096
	var pages []indextest.Page
	for p := uint32(1); p <= 700; p++ {
		pages = append(pages, indextest.Page{Pgno: p, Data: indextest.PageData(ps, 1, p)})
	}
	tests := []struct {
		name string
		old  func(pgno uint32) bool
	}{
		{"all pages in frame encoding", func(uint32) bool { return true }},
		{"frame encoding from page 400 on", func(p uint32) bool { return p >= 400 }},
		{"alternating", func(p uint32) bool { return p%2 == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := map[uint32]bool{}
			for _, p := range pages {
				old[p.Pgno] = tt.old(p.Pgno)
			}
			c := indextest.NewMem()
			snap := restoreEncodeMixed(t, ltx.Header{PageSize: ps, Commit: 700, MinTXID: 1, MaxTXID: 1, Timestamp: 1}, pages, old)
			if _, err := c.Put(9, snap, time.Time{}); err != nil {
				t.Fatal(err)
			}
			// A block-encoded L0 file on top.
			changed := []indextest.Page{{Pgno: 5, Data: indextest.PageData(ps, 2, 5)}, {Pgno: 650, Data: indextest.PageData(ps, 2, 650)}}
			l0, err := indextest.Encode(ltx.Header{PageSize: ps, Commit: 700, MinTXID: 2, MaxTXID: 2}, changed)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Put(0, l0, time.Time{}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "db")
			var last, total int64
			res, err := restore.Run(context.Background(), c, restore.Options{OutputPath: out, Logger: restoreQuiet,
				Progress: func(d, tot int64) { last, total = d, tot }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for p := uint32(1); p <= 700; p++ {
				want := indextest.PageData(ps, 1, p)
				if p == 5 || p == 650 {
					want = indextest.PageData(ps, 2, p)
				}
				if !bytes.Equal(got[(p-1)*ps:p*ps], want) {
					t.Fatalf("page %d differs", p)
				}
			}
			if res.Bytes != int64(len(snap)+len(l0)) || last != total {
				t.Errorf("read %d bytes of %d; progress %d/%d", res.Bytes, len(snap)+len(l0), last, total)
			}

			// A corrupt frame-encoded page is still caught, naming the file.
			bad := bytes.Clone(snap)
			bad[len(bad)/2] ^= 0x20
			c.SetData(9, 1, 1, bad)
			_, err = restore.Run(context.Background(), c, restore.Options{OutputPath: filepath.Join(t.TempDir(), "db"), Logger: restoreQuiet})
			if err == nil || !strings.Contains(err.Error(), "level 9 file 0000000000000001-0000000000000001.ltx") {
				t.Fatalf("corrupt file: error %v", err)
			}
		})
	}
}

// Snapshots that track checksums: the post-apply checksum in the trailer is
// checked against the pages, as ltx.Decoder does.
func TestRestorePostApplyChecksum(t *testing.T) {
	const ps = 1024
	encode := func(post ltx.Checksum) []byte {
		spec := ltx.FileSpec{Header: ltx.Header{PageSize: ps, Commit: 2000, MinTXID: 1, MaxTXID: 1, Timestamp: 1},
			Trailer: ltx.Trailer{PostApplyChecksum: post}}
		for p := uint32(1); p <= 2000; p++ {
			spec.Pages = append(spec.Pages, ltx.PageSpec{Header: ltx.PageHeader{Pgno: p}, Data: indextest.PageData(ps, 1, p)})
		}
		return testsupport.LTX(t, spec)
	}
	var sum ltx.Checksum
	for p := uint32(1); p <= 2000; p++ {
		sum ^= ltx.ChecksumPage(p, indextest.PageData(ps, 1, p))
	}
	for _, tc := range []struct {
		name string
		post ltx.Checksum
		ok   bool
	}{
		{"right", ltx.ChecksumFlag | sum, true},
		{"wrong", ltx.ChecksumFlag | (sum ^ 0x1234), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(tc.post)
			ltxErr := ltx.NewDecoder(bytes.NewReader(data)).Verify()
			c := indextest.NewMem()
			if _, err := c.Put(9, data, time.Time{}); err != nil {
				t.Fatal(err)
			}
			_, err := restore.Run(context.Background(), c, restore.Options{OutputPath: filepath.Join(t.TempDir(), "db"), Logger: restoreQuiet})
			if (err == nil) != tc.ok || (ltxErr == nil) != tc.ok {
				t.Fatalf("restore error %v, ltx error %v, want ok=%v", err, ltxErr, tc.ok)
			}
		})
	}
}

// Random single-byte corruptions anywhere in a file: whatever ltx.Decoder
// rejects, Run rejects too, naming the file; whatever Run accepts
// restores the right pages.
func TestRestoreCorruptionParity(t *testing.T) {
	rng := testsupport.Rand(t, 6)
	const ps, n = 4096, 600 // several 1 MiB jobs
	var pages []indextest.Page
	want := make([]byte, 0, n*ps)
	for p := uint32(1); p <= n; p++ {
		d := indextest.PageData(ps, 1, p)
		// Half random, half pattern: frames of varied sizes.
		for i := 0; i < ps/2; i += 8 {
			binary.LittleEndian.PutUint64(d[i:], rng.Uint64())
		}
		pages = append(pages, indextest.Page{Pgno: p, Data: d})
		want = append(want, d...)
	}
	good, err := indextest.Encode(ltx.Header{PageSize: ps, Commit: n, MinTXID: 1, MaxTXID: 1}, pages)
	if err != nil {
		t.Fatal(err)
	}
	trials := 60
	if testing.Short() {
		trials = 15
	}
	var accepted, rejected int
	for i := 0; i < trials; i++ {
		bad := bytes.Clone(good)
		var pos int
		switch i % 3 {
		case 0: // anywhere
			pos = rng.IntN(len(bad))
		case 1: // the header and first frames
			pos = rng.IntN(200)
		default: // the page index and trailer
			pos = len(bad) - 1 - rng.IntN(min(len(bad), 6000))
		}
		bad[pos] ^= byte(1 + rng.IntN(255))
		ltxErr := ltx.NewDecoder(bytes.NewReader(bad)).Verify()
		c := indextest.NewMem()
		c.SetData(9, 1, 1, bad)
		out := filepath.Join(t.TempDir(), "db")
		_, err := restore.Run(context.Background(), c, restore.Options{OutputPath: out, Logger: restoreQuiet})
		switch {
		case err != nil:
			rejected++
			if !strings.Contains(err.Error(), "0000000000000001-0000000000000001.ltx") {
				t.Fatalf("byte %d: error %q does not name the file", pos, err)
			}
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("byte %d: output left after error %v", pos, err)
			}
		case ltxErr != nil:
			t.Fatalf("byte %d: ltx rejects the file (%v) but Run accepted it", pos, ltxErr)
		default:
			accepted++
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, want) {
				t.Fatalf("byte %d: accepted corruption changed the restored pages", pos)
			}
		}
	}
	t.Logf("%d corruptions rejected, %d harmless ones accepted", rejected, accepted)
}
