// Package remotetest holds the contract every remote.Client backend must
// pass (RunContract) and helpers that build real LTX files for tests.
// It is imported only by tests.
package remotetest

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/superfly/ltx"
)

// LTXSpec describes a synthetic LTX file for BuildLTX.
type LTXSpec struct {
	MinTXID, MaxTXID ltx.TXID
	// Timestamp goes into the header with millisecond precision.
	Timestamp time.Time
	// PageSize defaults to 4096.
	PageSize uint32
	// Pages is the number of pages, numbered 1..Pages (the lock page is
	// skipped); the commit size is the last page number. Defaults to 1.
	Pages int
	// Seed selects the page contents (see PageData).
	Seed uint64
}

// PageData returns the content BuildLTX writes for page pgno: pseudo-random
// bytes from (seed, pgno), so they do not compress and a test can recompute
// any page without keeping the file's pages around.
func PageData(seed uint64, pgno uint32, pageSize uint32) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(pgno)))
	b := make([]byte, pageSize)
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// BuildLTX encodes an LTX file as Litestream v0.5 writes them: header flag
// NoChecksum, no rolling checksums, LZ4 block-compressed pages, a page index
// and a trailer with the file checksum.
func BuildLTX(tb testing.TB, spec LTXSpec) []byte {
	tb.Helper()
	if spec.PageSize == 0 {
		spec.PageSize = 4096
	}
	if spec.Pages == 0 {
		spec.Pages = 1
	}
	lockPgno := ltx.LockPgno(spec.PageSize)
	pgnos := make([]uint32, 0, spec.Pages)
	for pgno := uint32(1); len(pgnos) < spec.Pages; pgno++ {
		if pgno != lockPgno {
			pgnos = append(pgnos, pgno)
		}
	}

	spec2 := ltx.FileSpec{Header: ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  spec.PageSize,
		Commit:    pgnos[len(pgnos)-1],
		MinTXID:   spec.MinTXID,
		MaxTXID:   spec.MaxTXID,
		Timestamp: spec.Timestamp.UnixMilli(),
	}}
	for _, pgno := range pgnos {
		spec2.Pages = append(spec2.Pages, ltx.PageSpec{Header: ltx.PageHeader{Pgno: pgno}, Data: PageData(spec.Seed, pgno, spec.PageSize)})
	}
	return testsupport.LTX(tb, spec2)
}

// PageIndexRange returns the byte range of data's page index as a reader
// fetches it: the index records and end marker plus the 8-byte size field,
// i.e. everything between the page block and the 16-byte trailer.
func PageIndexRange(data []byte) (offset, size int64) {
	n := int64(len(data))
	idxSize := int64(binary.BigEndian.Uint64(data[n-ltx.TrailerSize-8:]))
	return n - ltx.TrailerSize - 8 - idxSize, idxSize + 8
}
