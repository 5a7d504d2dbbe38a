package ltxframe

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
)

func TestXXH32(t *testing.T) {
	// Reference values of XXH32 with seed 0.
	for in, want := range map[string]uint32{
		"":    0x02CC5D05,
		"a":   0x550D7456,
		"abc": 0x32D153FF,
		"Nobody inspects the spammish repetition": 0xE2293B2F,
	} {
		if got := xxh32([]byte(in)); got != want {
			t.Errorf("xxh32(%q) = %#08x, want %#08x", in, got, want)
		}
	}
}

// pageOf returns test content: half random (incompressible), half a
// repeated pattern, or all zeros, by kind.
func pageOf(rng *rand.Rand, size int, kind int) []byte {
	b := make([]byte, size)
	switch kind % 3 {
	case 0:
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case 1:
		for i := range b[:size/2] {
			b[i] = byte(rng.Uint32())
		}
		for i := size / 2; i < size; i++ {
			b[i] = byte(i % 7)
		}
	}
	return b
}

func testRNG(t *testing.T) *rand.Rand {
	t.Helper()
	return testsupport.Rand(t, 3)
}

// Frames are valid LZ4 frames (pierrec/lz4's reader, which checks the
// descriptor and content checksums, decodes them) and Decode returns the
// page.
func TestFrameRoundTrip(t *testing.T) {
	rng := testRNG(t)
	var c lz4.Compressor
	for _, size := range []int{512, 4096, 65536} {
		for kind := 0; kind < 3; kind++ {
			page := pageOf(rng, size, kind)
			f, err := AppendFrame(nil, page, &c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(lz4.NewReader(bytes.NewReader(f)))
			if err != nil || !bytes.Equal(got, page) {
				t.Fatalf("size %d kind %d: lz4.Reader: %v (equal %v)", size, kind, err, bytes.Equal(got, page))
			}
			dst := make([]byte, size)
			if err := Decode(dst, f); err != nil || !bytes.Equal(dst, page) {
				t.Fatalf("size %d kind %d: Decode: %v", size, kind, err)
			}
			rf, err := ReadFrame(nil, bytes.NewReader(append(bytes.Clone(f), 1, 2, 3)), MaxFrameSize(size))
			if err != nil || !bytes.Equal(rf, f) {
				t.Fatalf("size %d kind %d: ReadFrame: %v (%d of %d bytes)", size, kind, err, len(rf), len(f))
			}
		}
	}
}

// No single-byte change of a frame makes Decode return a page other than
// the one written.
func TestDecodeRejectsEveryFlip(t *testing.T) {
	rng := testRNG(t)
	var c lz4.Compressor
	for kind := 0; kind < 3; kind++ {
		page := pageOf(rng, 4096, kind)
		f, err := AppendFrame(nil, page, &c)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, 4096)
		for i := range f {
			for _, mask := range []byte{0x01, 0x80, 0xff, byte(1 + rng.IntN(254))} {
				g := bytes.Clone(f)
				g[i] ^= mask
				// LZ4 has equivalent encodings (a run of zeros matched at
				// offset 1 or 2): a flip may decode to the same page,
				// never to another one.
				if err := Decode(dst, g); err == nil && !bytes.Equal(dst, page) {
					t.Fatalf("kind %d: flip %#02x at byte %d of %d decoded to another page without error", kind, mask, i, len(f))
				}
			}
		}
		for n := 0; n < len(f); n++ {
			if err := Decode(dst, f[:n]); err == nil {
				t.Fatalf("kind %d: frame cut to %d bytes decoded", kind, n)
			}
		}
		if err := Decode(dst, append(bytes.Clone(f), 0)); err == nil {
			t.Fatalf("kind %d: frame with a trailing byte decoded", kind)
		}
	}
}

// A frame without a content checksum (valid LZ4, unverifiable) is refused.
func TestDecodeRequiresContentChecksum(t *testing.T) {
	var buf bytes.Buffer
	zw := lz4.NewWriter(&buf)
	if err := zw.Apply(lz4.ChecksumOption(false), lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
		t.Fatal(err)
	}
	page := make([]byte, 4096)
	zw.Write(page)
	zw.Close()
	if err := Decode(make([]byte, 4096), buf.Bytes()); err == nil || !bytes.Contains([]byte(err.Error()), []byte("content checksum")) {
		t.Fatalf("Decode of a frame without checksum: %v", err)
	}
	// pierrec/lz4's own frames with the default options (what ltx wrote
	// before v0.5.2) decode.
	buf.Reset()
	zw = lz4.NewWriter(&buf)
	zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.CompressionLevelOption(lz4.Fast))
	copy(page, "hello")
	zw.Write(page)
	zw.Close()
	dst := make([]byte, 4096)
	if err := Decode(dst, buf.Bytes()); err != nil || !bytes.Equal(dst, page) {
		t.Fatalf("Decode of a default pierrec/lz4 frame: %v", err)
	}
}

type testFile struct {
	hdr   ltx.Header
	pages map[uint32][]byte
}

func encodeFile(t *testing.T, f testFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	enc.SetSpillDir(t.TempDir())
	enc.SetSpillThreshold(7) // exercise the spill
	encodePages(t, enc, f)
	if int64(buf.Len()) != enc.N() {
		t.Fatalf("N %d, wrote %d", enc.N(), buf.Len())
	}
	return buf.Bytes()
}

// ltx.Decoder verifies our files (checksum, page index) and decodes every
// page; each page index entry is one frame that ltx.DecodePageData and
// Decode read alone.
func TestEncoderReadByLTX(t *testing.T) {
	rng := testRNG(t)
	f := testFile{hdr: ltx.Header{Flags: ltx.HeaderFlagNoChecksum, PageSize: 4096, Commit: 40, MinTXID: 1, MaxTXID: 5, Timestamp: 1700000000000},
		pages: map[uint32][]byte{}}
	for p := uint32(1); p <= 40; p++ {
		f.pages[p] = pageOf(rng, 4096, int(p))
	}
	b := encodeFile(t, f)
	dec := ltx.NewDecoder(bytes.NewReader(b))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4096)
	for n := 0; ; n++ {
		var ph ltx.PageHeader
		err := dec.DecodePage(&ph, data)
		if err == io.EOF {
			if n != 40 {
				t.Fatalf("%d pages", n)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, f.pages[ph.Pgno]) {
			t.Fatalf("page %d differs", ph.Pgno)
		}
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	for pgno, e := range dec.PageIndex() {
		frame := b[e.Offset : e.Offset+e.Size]
		_, got, err := ltx.DecodePageData(frame)
		if err != nil || !bytes.Equal(got, f.pages[pgno]) {
			t.Fatalf("DecodePageData of page %d: %v", pgno, err)
		}
		if binary.BigEndian.Uint32(frame) != pgno || binary.BigEndian.Uint16(frame[4:]) != 0 {
			t.Fatalf("page %d: page header %x", pgno, frame[:6])
		}
		if err := Decode(data, frame[ltx.PageHeaderSize:]); err != nil || !bytes.Equal(data, f.pages[pgno]) {
			t.Fatalf("Decode of page %d: %v", pgno, err)
		}
	}
	// A snapshot missing a page is refused, like ltx.Encoder does.
	enc, _ := NewEncoder(io.Discard)
	enc.EncodeHeader(f.hdr)
	enc.EncodePage(ltx.PageHeader{Pgno: 1}, f.pages[1])
	if err := enc.EncodePage(ltx.PageHeader{Pgno: 3}, f.pages[3]); err == nil {
		t.Fatal("snapshot with a missing page encoded")
	}
}

// Compact gives the same pages as ltx.Compactor over inputs of both
// encodings, and its output is a valid file in the frame encoding.
func TestCompact(t *testing.T) {
	rng := testRNG(t)
	var inputs [][]byte
	want := map[uint32][]byte{}
	commit := uint32(30)
	for txid := ltx.TXID(2); txid <= 6; txid++ {
		if txid == 5 {
			commit = 25 // a shrink drops pages 26..30
		}
		f := testFile{hdr: ltx.Header{Flags: ltx.HeaderFlagNoChecksum, PageSize: 4096, Commit: commit, MinTXID: txid, MaxTXID: txid, Timestamp: int64(txid) * 1000},
			pages: map[uint32][]byte{}}
		for i := 0; i < 8; i++ {
			p := uint32(1 + rng.IntN(int(commit)))
			f.pages[p] = pageOf(rng, 4096, rng.IntN(3))
		}
		for p, d := range f.pages {
			want[p] = d
		}
		if txid%2 == 0 {
			inputs = append(inputs, encodeFile(t, f))
		} else {
			inputs = append(inputs, encodeBlock(t, f))
		}
	}
	for p := range want {
		if p > commit {
			delete(want, p)
		}
	}
	var out bytes.Buffer
	readers := make([]Input, len(inputs))
	for i, in := range inputs {
		readers[i] = Input{R: bytes.NewReader(in), MinTXID: ltx.TXID(2 + i), MaxTXID: ltx.TXID(2 + i)}
	}
	hdr, err := Compact(context.Background(), &out, readers, ltx.HeaderFlagNoChecksum, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if hdr.MinTXID != 2 || hdr.MaxTXID != 6 || hdr.Commit != 25 || hdr.Timestamp != 6000 {
		t.Fatalf("header %+v", hdr)
	}
	dec := ltx.NewDecoder(bytes.NewReader(out.Bytes()))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4096)
	got := map[uint32][]byte{}
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if ph.Flags != 0 {
			t.Fatalf("page %d in the block encoding", ph.Pgno)
		}
		got[ph.Pgno] = bytes.Clone(data)
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d pages, want %d", len(got), len(want))
	}
	for p, d := range want {
		if !bytes.Equal(got[p], d) {
			t.Fatalf("page %d is not the newest version", p)
		}
	}
	// Non-contiguous inputs are refused.
	_, err = Compact(context.Background(), io.Discard, []Input{{R: bytes.NewReader(inputs[0])}, {R: bytes.NewReader(inputs[2])}}, ltx.HeaderFlagNoChecksum, "")
	if err == nil {
		t.Fatal("compacted inputs with a gap")
	}
	// An input whose header is not its name's is refused, by name.
	_, err = Compact(context.Background(), io.Discard, []Input{{R: bytes.NewReader(inputs[0])}, {R: bytes.NewReader(inputs[1]), Name: "file 4", MinTXID: 4, MaxTXID: 4}}, ltx.HeaderFlagNoChecksum, "")
	if err == nil || !strings.Contains(err.Error(), "file 4: header says TXIDs 0000000000000003") {
		t.Fatalf("compacted a swapped input: %v", err)
	}
	// A corrupt input fails the compaction.
	bad := bytes.Clone(inputs[1])
	bad[len(bad)/2] ^= 1
	_, err = Compact(context.Background(), io.Discard, []Input{{R: bytes.NewReader(inputs[0])}, {R: bytes.NewReader(bad)}}, ltx.HeaderFlagNoChecksum, "")
	if err == nil {
		t.Fatal("compacted a corrupt input")
	}
}

// encodeBlock writes f with ltx.Encoder (the block encoding).
func encodeBlock(t *testing.T, f testFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, _ := ltx.NewEncoder(&buf)
	f.hdr.Version = ltx.Version
	encodePages(t, enc, f)
	return buf.Bytes()
}

// encodePages writes f's header and pages, in page order, to enc (this
// package's Encoder or ltx.Encoder) and closes it.
func encodePages(t *testing.T, enc interface {
	EncodeHeader(ltx.Header) error
	EncodePage(ltx.PageHeader, []byte) error
	Close() error
}, f testFile) {
	t.Helper()
	if err := enc.EncodeHeader(f.hdr); err != nil {
		t.Fatal(err)
	}
	for pgno := uint32(1); pgno <= f.hdr.Commit; pgno++ {
		if p, ok := f.pages[pgno]; ok {
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDecode compares decoding a 4 KiB page (half random, half a
// pattern) from this encoding (with the content checksum) and from the
// block encoding (lz4.UncompressBlock, no checksum).
func BenchmarkDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	page := pageOf(rng, 4096, 1)
	var c lz4.Compressor
	frame, _ := AppendFrame(nil, page, &c)
	blk := make([]byte, lz4.CompressBlockBound(4096))
	n, _ := c.CompressBlock(page, blk)
	blk = blk[:n]
	dst := make([]byte, 4096)
	b.Run("frame", func(b *testing.B) {
		b.SetBytes(4096)
		for range b.N {
			if err := Decode(dst, frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("block", func(b *testing.B) {
		b.SetBytes(4096)
		for range b.N {
			if _, err := lz4.UncompressBlock(blk, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-frame", func(b *testing.B) {
		b.SetBytes(4096)
		for range b.N {
			frame, _ = AppendFrame(frame[:0], page, &c)
		}
	})
	b.Run("encode-block", func(b *testing.B) {
		b.SetBytes(4096)
		for range b.N {
			c.CompressBlock(page, blk[:cap(blk)])
		}
	})
}
