package ltxframe

import (
	"context"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// Input is one file to compact.
type Input struct {
	R io.Reader
	// Name is used in errors ("input N" if empty).
	Name string
	// MinTXID and MaxTXID, if set, are what the file's header must say:
	// the TXIDs of the name it was listed under.
	MinTXID, MaxTXID ltx.TXID
}

// Compact merges LTX files (inputs, in TXID order, either page encoding)
// into one file written to w in the frame encoding, as ltx.Compactor does:
// the inputs must have one page size and contiguous TXIDs (ltx.IsContiguous:
// an overlap is fine), the newest input's version of a page wins, pages
// beyond the final commit are dropped, the output carries the first input's
// MinTXID and pre-apply checksum, the last input's MaxTXID, Commit,
// timestamp and post-apply checksum, and flags. Every input is decoded to
// its end, so its checksum is verified; an input's error names it.
func Compact(ctx context.Context, w io.Writer, inputs []Input, flags uint32, spillDir string) (ltx.Header, error) {
	if len(inputs) == 0 {
		return ltx.Header{}, fmt.Errorf("compact: no inputs")
	}
	ins, err := openInputs(inputs)
	if err != nil {
		return ltx.Header{}, err
	}
	first, last := ins[0].dec.Header(), ins[len(ins)-1].dec.Header()
	enc, err := NewEncoder(w)
	if err != nil {
		return ltx.Header{}, err
	}
	if spillDir != "" {
		enc.SetSpillDir(spillDir)
	}
	defer enc.Cleanup()
	hdr := ltx.Header{
		Version: ltx.Version, Flags: flags, PageSize: first.PageSize, Commit: last.Commit,
		MinTXID: first.MinTXID, MaxTXID: last.MaxTXID, Timestamp: last.Timestamp, PreApplyChecksum: first.PreApplyChecksum,
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return ltx.Header{}, fmt.Errorf("compact: %w", err)
	}
	for _, in := range ins {
		in.data = make([]byte, first.PageSize)
	}
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ltx.Header{}, ctx.Err()
		}
		pgno, err := nextPgno(ins)
		if err != nil {
			return ltx.Header{}, err
		}
		if pgno == 0 {
			break
		}
		// The newest input holding the page wins; the others' copies are
		// consumed.
		written := false
		for i := len(ins) - 1; i >= 0; i-- {
			in := ins[i]
			if in.hdr.Pgno != pgno {
				continue
			}
			in.hdr = ltx.PageHeader{}
			if written || pgno > hdr.Commit {
				continue
			}
			written = true
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, in.data); err != nil {
				return ltx.Header{}, fmt.Errorf("compact: page %d: %w", pgno, err)
			}
		}
	}
	for _, in := range ins {
		if err := in.dec.Close(); err != nil {
			return ltx.Header{}, fmt.Errorf("compact: %s: %w", in.name, err)
		}
	}
	if flags&ltx.HeaderFlagNoChecksum == 0 {
		enc.SetPostApplyChecksum(ins[len(ins)-1].dec.Trailer().PostApplyChecksum)
	}
	if err := enc.Close(); err != nil {
		return ltx.Header{}, fmt.Errorf("compact: %w", err)
	}
	return enc.Header(), nil
}

// mergeInput is one input being merged: its decoder and the page it has decoded
// but not yet consumed.
type mergeInput struct {
	dec  *ltx.Decoder
	name string
	hdr  ltx.PageHeader // zero when empty
	data []byte
	done bool
}

// openInputs decodes every input's header and checks, before any page is
// read, that the inputs can be merged: each header says the TXIDs it was
// listed under, and all have one page size and contiguous TXIDs.
func openInputs(inputs []Input) ([]*mergeInput, error) {
	ins := make([]*mergeInput, len(inputs))
	for i, in := range inputs {
		name := in.Name
		if name == "" {
			name = fmt.Sprintf("input %d", i)
		}
		dec := ltx.NewDecoder(in.R)
		dec.SetRetainPageIndex(false)
		if err := dec.DecodeHeader(); err != nil {
			return nil, fmt.Errorf("compact: %s: decode header: %w", name, err)
		}
		h := dec.Header()
		if in.MaxTXID != 0 && (h.MinTXID != in.MinTXID || h.MaxTXID != in.MaxTXID) {
			return nil, fmt.Errorf("compact: %s: header says TXIDs %s-%s", name, h.MinTXID, h.MaxTXID)
		}
		ins[i] = &mergeInput{dec: dec, name: name}
		if i > 0 {
			prev := ins[i-1].dec.Header()
			if prev.PageSize != h.PageSize {
				return nil, fmt.Errorf("compact: %s: page size %d differs from %d", name, h.PageSize, prev.PageSize)
			}
			if !ltx.IsContiguous(prev.MaxTXID, h.MinTXID, h.MaxTXID) {
				return nil, fmt.Errorf("compact: %s: TXIDs %s-%s do not continue %s-%s", name, h.MinTXID, h.MaxTXID, prev.MinTXID, prev.MaxTXID)
			}
		}
	}
	return ins, nil
}

// nextPgno fills each empty buffer with its input's next page and returns
// the lowest page number held, 0 when every input is at its end. Pages in
// an input come in ascending order, so the lowest is the next to write.
func nextPgno(ins []*mergeInput) (uint32, error) {
	var pgno uint32
	for _, in := range ins {
		if in.hdr.Pgno == 0 && !in.done {
			switch err := in.dec.DecodePage(&in.hdr, in.data); {
			case err == io.EOF:
				in.done, in.hdr = true, ltx.PageHeader{}
			case err != nil:
				return 0, fmt.Errorf("compact: %s: %w", in.name, err)
			}
		}
		if in.hdr.Pgno != 0 && (pgno == 0 || in.hdr.Pgno < pgno) {
			pgno = in.hdr.Pgno
		}
	}
	return pgno, nil
}
