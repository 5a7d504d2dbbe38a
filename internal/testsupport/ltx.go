package testsupport

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/superfly/ltx"
)

// LTX encodes spec with the ltx library's own ltx.FileSpec (its encoder):
// LZ4 block pages, a page index and the file checksum in the trailer, as
// Litestream v0.5 writes files. spec's pages must be in ascending page
// order; a zero header Version becomes ltx.Version; the trailer's
// PostApplyChecksum is written as given (leave it zero with
// ltx.HeaderFlagNoChecksum). This is the tests' one LTX builder:
// remotetest.BuildLTX, indextest.Encode and the files tests write by hand go
// through it. (The writer's own encoding, LZ4 frames, is internal/ltxframe.)
func LTX(tb testing.TB, spec ltx.FileSpec) []byte {
	tb.Helper()
	b, err := EncodeLTX(spec)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// EncodeLTX is LTX for callers without a testing.TB.
func EncodeLTX(spec ltx.FileSpec) ([]byte, error) {
	if spec.Header.Version == 0 {
		spec.Header.Version = ltx.Version
	}
	var buf bytes.Buffer
	if _, err := spec.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode LTX %s: %w", ltx.FormatFilename(spec.Header.MinTXID, spec.Header.MaxTXID), err)
	}
	return buf.Bytes(), nil
}
