// Package ltxframe reads and writes LTX page frames in the LZ4 frame
// encoding ("old" LTX page encoding: a page header without the size flag,
// then one LZ4 frame holding the page) with the frame's content checksum
// (xxh32 of the page) always present, so that every page read by byte range
// can be verified on its own. The ltx library's Decoder, DecodePageData and
// Compactor read this encoding (and so does Litestream v0.5), but its
// Encoder only writes the block encoding, whose pages carry no checksum.
//
// Encoder and Compact write whole LTX files in this encoding; Decode
// verifies one page's frame strictly (the frame's magic, descriptor and its
// header checksum, block sizes, the decoded size and the content checksum);
// ReadFrame cuts a frame out of a stream without decompressing it.
package ltxframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/pierrec/lz4/v4"
)

const (
	frameMagic = 0x184D2204
	// flg: version 01, independent blocks, content checksum; no block
	// checksums, no content size, no dictionary.
	flgVersion         = 0x40
	flgVersionMask     = 0xC0
	flgBlockIndep      = 0x20
	flgBlockChecksum   = 0x10
	flgContentSize     = 0x08
	flgContentChecksum = 0x04
	flgReserved        = 0x02
	flgDictID          = 0x01
	ourFLG             = flgVersion | flgBlockIndep | flgContentChecksum
	// bd: 64 KiB maximum block size (index 4), as ltx wrote.
	ourBD = 4 << 4

	uncompressedBit = 0x80000000
)

// blockMax returns the maximum block size of a BD byte, 0 if invalid.
func blockMax(bd byte) int {
	if bd&0x8F != 0 {
		return 0 // reserved bits
	}
	switch bd >> 4 & 7 {
	case 4:
		return 64 << 10
	case 5:
		return 256 << 10
	case 6:
		return 1 << 20
	case 7:
		return 4 << 20
	}
	return 0
}

// descriptorChecksum is the frame descriptor's header checksum byte.
func descriptorChecksum(desc []byte) byte { return byte(xxh32(desc) >> 8) }

// MaxFrameSize is the largest frame AppendFrame writes for a page of
// pageSize bytes.
func MaxFrameSize(pageSize int) int {
	return 7 + 4 + max(pageSize, lz4.CompressBlockBound(pageSize)) + 4 + 4
}

// AppendFrame appends the LZ4 frame of one page to dst: the descriptor, one
// block (stored uncompressed when LZ4 does not make it smaller), the end
// mark and the content checksum. page must be at most 64 KiB.
func AppendFrame(dst, page []byte, c *lz4.Compressor) ([]byte, error) {
	if len(page) > 64<<10 {
		return nil, fmt.Errorf("page of %d bytes exceeds the 64 KiB block size", len(page))
	}
	dst = binary.LittleEndian.AppendUint32(dst, frameMagic)
	dst = append(dst, ourFLG, ourBD, descriptorChecksum([]byte{ourFLG, ourBD}))
	sizeAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	bound := lz4.CompressBlockBound(len(page))
	dst = grow(dst, bound)
	n, err := c.CompressBlock(page, dst[len(dst):len(dst)+bound])
	if err != nil {
		return nil, fmt.Errorf("compress page: %w", err)
	}
	if n == 0 || n >= len(page) {
		binary.LittleEndian.PutUint32(dst[sizeAt:], uint32(len(page))|uncompressedBit)
		dst = append(dst, page...)
	} else {
		binary.LittleEndian.PutUint32(dst[sizeAt:], uint32(n))
		dst = dst[:len(dst)+n]
	}
	dst = binary.LittleEndian.AppendUint32(dst, 0) // end mark
	return binary.LittleEndian.AppendUint32(dst, xxh32(page)), nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b
}

// ErrChecksum reports a page whose decoded content does not match its
// frame's content checksum.
var ErrChecksum = errors.New("LZ4 content checksum mismatch")

// Decode decodes b, which must be exactly one LZ4 frame, into dst, which
// must be exactly the page size. It requires the content checksum (so every
// page it returns is the one its writer compressed) and checks the frame's
// magic, descriptor and header checksum, block sizes, block checksums if
// present, and that the frame decodes to exactly len(dst) bytes.
func Decode(dst, b []byte) error {
	hdrLen, bmax, flg, err := parseDescriptor(b, len(dst))
	if err != nil {
		return err
	}
	pos, n := hdrLen, 0
	for {
		if pos+4 > len(b) {
			return errors.New("LZ4 frame: truncated block header")
		}
		size := binary.LittleEndian.Uint32(b[pos:])
		pos += 4
		if size == 0 {
			break // end mark
		}
		raw := size&uncompressedBit != 0
		size &^= uncompressedBit
		if int(size) > bmax || pos+int(size) > len(b) {
			return fmt.Errorf("LZ4 frame: block of %d bytes exceeds the frame or the block size", size)
		}
		blk := b[pos : pos+int(size)]
		pos += int(size)
		if flg&flgBlockChecksum != 0 {
			if pos+4 > len(b) || binary.LittleEndian.Uint32(b[pos:]) != xxh32(blk) {
				return errors.New("LZ4 frame: block checksum mismatch")
			}
			pos += 4
		}
		if n == len(dst) {
			return fmt.Errorf("LZ4 frame: decodes to more than %d bytes (page size is %d)", n, len(dst))
		}
		var m int
		if raw {
			m = copy(dst[n:], blk)
			if m < len(blk) {
				return fmt.Errorf("LZ4 frame: decodes to more than %d bytes (page size is %d)", n+m, len(dst))
			}
		} else if flg&flgBlockIndep != 0 || n == 0 {
			if m, err = lz4.UncompressBlock(blk, dst[n:]); err != nil {
				return fmt.Errorf("LZ4 frame: decompress (page size is %d): %w", len(dst), err)
			}
		} else if m, err = lz4.UncompressBlockWithDict(blk, dst[n:], dst[max(0, n-64<<10):n]); err != nil {
			return fmt.Errorf("LZ4 frame: decompress (page size is %d): %w", len(dst), err)
		}
		n += m
	}
	if n != len(dst) {
		return fmt.Errorf("LZ4 frame: decodes to %d bytes, page size is %d", n, len(dst))
	}
	if pos+4 != len(b) {
		return fmt.Errorf("LZ4 frame: %d bytes after the end mark, want the 4-byte content checksum", len(b)-pos)
	}
	if binary.LittleEndian.Uint32(b[pos:]) != xxh32(dst) {
		return ErrChecksum
	}
	return nil
}

// parseDescriptor checks a frame's magic and descriptor and returns the
// descriptor's length, the maximum block size and the flags. A content size
// field must equal pageSize unless pageSize is negative.
func parseDescriptor(b []byte, pageSize int) (n, bmax int, flg byte, err error) {
	if len(b) < 7 {
		return 0, 0, 0, errors.New("LZ4 frame: too short")
	}
	if binary.LittleEndian.Uint32(b) != frameMagic {
		return 0, 0, 0, fmt.Errorf("LZ4 frame: bad magic %#08x", binary.LittleEndian.Uint32(b))
	}
	flg = b[4]
	switch {
	case flg&flgVersionMask != flgVersion:
		return 0, 0, 0, errors.New("LZ4 frame: unknown version")
	case flg&(flgReserved|flgDictID) != 0:
		return 0, 0, 0, errors.New("LZ4 frame: reserved flag or dictionary set")
	case flg&flgContentChecksum == 0:
		// A page without its checksum cannot be verified; every writer of
		// this encoding (pierrec/lz4's default, and ours) sets it.
		return 0, 0, 0, errors.New("LZ4 frame: no content checksum")
	}
	n = 6
	if flg&flgContentSize != 0 {
		n += 8
	}
	if len(b) < n+1 {
		return 0, 0, 0, errors.New("LZ4 frame: truncated descriptor")
	}
	if descriptorChecksum(b[4:n]) != b[n] {
		return 0, 0, 0, errors.New("LZ4 frame: descriptor checksum mismatch")
	}
	if flg&flgContentSize != 0 && pageSize >= 0 && binary.LittleEndian.Uint64(b[6:]) != uint64(pageSize) {
		return 0, 0, 0, fmt.Errorf("LZ4 frame: content size %d, want %d", binary.LittleEndian.Uint64(b[6:]), pageSize)
	}
	if bmax = blockMax(b[5]); bmax == 0 {
		return 0, 0, 0, errors.New("LZ4 frame: invalid block descriptor")
	}
	return n + 1, bmax, flg, nil
}

// ReadFrame reads one LZ4 frame from r, appending its bytes to dst, without
// decompressing it (Decode verifies it later). maxSize bounds the frame.
func ReadFrame(dst []byte, r io.Reader, maxSize int) ([]byte, error) {
	start := len(dst)
	read := func(n int) ([]byte, error) {
		if len(dst)-start+n > maxSize {
			return nil, fmt.Errorf("LZ4 frame longer than %d bytes", maxSize)
		}
		dst = grow(dst, n)
		b := dst[len(dst) : len(dst)+n]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		dst = dst[:len(dst)+n]
		return b, nil
	}
	head, err := read(7)
	if err != nil {
		return nil, err
	}
	flg := head[4]
	hdr := slicesClone(head)
	if flg&flgContentSize != 0 {
		more, err := read(8)
		if err != nil {
			return nil, err
		}
		hdr = append(hdr, more...)
	}
	_, bmax, _, err := parseDescriptor(hdr, -1)
	if err != nil {
		return nil, err
	}
	for {
		sb, err := read(4)
		if err != nil {
			return nil, err
		}
		size := binary.LittleEndian.Uint32(sb)
		if size == 0 {
			break
		}
		size &^= uncompressedBit
		if int(size) > bmax {
			return nil, fmt.Errorf("LZ4 frame: block of %d bytes exceeds the block size %d", size, bmax)
		}
		n := int(size)
		if flg&flgBlockChecksum != 0 {
			n += 4
		}
		if _, err := read(n); err != nil {
			return nil, err
		}
	}
	if _, err := read(4); err != nil { // content checksum (required by parseDescriptor)
		return nil, err
	}
	return dst, nil
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// xxh32 is XXH32 with seed 0, the LZ4 frame format's checksum.
func xxh32(b []byte) uint32 {
	const (
		p1 uint32 = 2654435761
		p2 uint32 = 2246822519
		p3 uint32 = 3266489917
		p4 uint32 = 668265263
		p5 uint32 = 374761393
	)
	n := len(b)
	var h uint32
	if n >= 16 {
		// seed+p1+p2, seed+p2, seed, seed-p1 in 32-bit arithmetic.
		var zero uint32
		v1, v2, v3, v4 := zero+p1+p2, p2, zero, zero-p1
		for len(b) >= 16 {
			v1 = bits.RotateLeft32(v1+binary.LittleEndian.Uint32(b[0:])*p2, 13) * p1
			v2 = bits.RotateLeft32(v2+binary.LittleEndian.Uint32(b[4:])*p2, 13) * p1
			v3 = bits.RotateLeft32(v3+binary.LittleEndian.Uint32(b[8:])*p2, 13) * p1
			v4 = bits.RotateLeft32(v4+binary.LittleEndian.Uint32(b[12:])*p2, 13) * p1
			b = b[16:]
		}
		h = bits.RotateLeft32(v1, 1) + bits.RotateLeft32(v2, 7) + bits.RotateLeft32(v3, 12) + bits.RotateLeft32(v4, 18)
	} else {
		h = p5
	}
	h += uint32(n)
	for ; len(b) >= 4; b = b[4:] {
		h = bits.RotateLeft32(h+binary.LittleEndian.Uint32(b)*p3, 17) * p4
	}
	for _, c := range b {
		h = bits.RotateLeft32(h+uint32(c)*p5, 11) * p1
	}
	h ^= h >> 15
	h *= p2
	h ^= h >> 13
	h *= p3
	h ^= h >> 16
	return h
}
