package remote

import (
	"fmt"

	"github.com/superfly/ltx"
)

// FileID is the identity of one LTX file of a replica: its level and TXID
// range. Files are immutable (docs/ARCHITECTURE.md invariant 1), so anything read from
// a file may be cached under its FileID and never needs invalidation.
type FileID struct {
	Level            int
	MinTXID, MaxTXID ltx.TXID
}

// IDOf returns the identity of a listed file.
func IDOf(info *ltx.FileInfo) FileID {
	return FileID{Level: info.Level, MinTXID: info.MinTXID, MaxTXID: info.MaxTXID}
}

// Name returns the file's name, "%016x-%016x.ltx".
func (id FileID) Name() string { return FileName(id.MinTXID, id.MaxTXID) }

// String describes the file for messages, e.g. "level 0 file
// 0000000000000001-0000000000000001.ltx".
func (id FileID) String() string { return fmt.Sprintf("level %d file %s", id.Level, id.Name()) }

// SameFile reports whether two listings name the same file.
func SameFile(a, b *ltx.FileInfo) bool { return a == b || IDOf(a) == IDOf(b) }

// FileName returns the name of an LTX file: "%016x-%016x.ltx", lower-case hex.
func FileName(minTXID, maxTXID ltx.TXID) string {
	return ltx.FormatFilename(minTXID, maxTXID)
}

// FileDesc returns a short human description of a file for error messages,
// e.g. "level 0 file 0000000000000001-0000000000000001.ltx".
func FileDesc(level int, minTXID, maxTXID ltx.TXID) string {
	return FileID{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}.String()
}

// Range is a byte range of one listed file: Size bytes at Offset of File
// (Size 0: to the end of the file, where a read allows it). It is where the
// page index says a page frame lives (index.Version.Lookup) and what the
// page fetcher reads (pagecache.Request), one type for both so that the
// two cannot drift apart. File is the listing entry: its identity (IDOf)
// and its size, which a reader may use to read a small file whole.
type Range struct {
	File   *ltx.FileInfo
	Offset int64
	Size   int64
}

// String describes the range for messages, e.g. "level 0 file ... bytes
// 100+4096".
func (r Range) String() string {
	return fmt.Sprintf("%s bytes %d+%d", IDOf(r.File), r.Offset, r.Size)
}
