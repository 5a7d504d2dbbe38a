// Package remote defines the storage contract every replica backend
// implements, the replica URL syntax, and the object-key layout shared with
// Litestream v0.5 replicas.
//
// A replica is a set of immutable LTX files grouped by level:
//
//	level 0      one file per writer sync; MinTXID == MaxTXID
//	levels 1..8  compactions of the level below
//	level 9      full snapshots; MinTXID == 1
//
// Files are never modified after they are written (docs/ARCHITECTURE.md invariant 1),
// so callers may cache anything they read, keyed by (level, MinTXID, MaxTXID).
package remote

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/superfly/ltx"
)

// Level numbers with a fixed meaning.
const (
	// L0 holds one LTX file per sync of the writer.
	L0 = 0
	// SnapshotLevel holds full database snapshots.
	SnapshotLevel = 9
	// MaxLevel is the highest level a replica may contain.
	MaxLevel = SnapshotLevel
)

// ErrNotExist is returned (wrapped) when a file or replica does not exist.
// It is os.ErrNotExist so that errors.Is(err, fs.ErrNotExist) also holds.
var ErrNotExist = os.ErrNotExist

// Client is the storage of one replica. Implementations must be safe for
// concurrent use by multiple goroutines.
//
// Every error names the backend and the key or path involved.
type Client interface {
	// Type returns the URL scheme of the backend, e.g. "file" or "s3".
	Type() string

	// LTXFiles returns every file of level whose MinTXID >= seek, ordered by
	// MinTXID ascending. Seek is a number, not a name prefix: a seek of 0x10
	// must return 0x10, 0x11, ... 0x100 alike. A level that does not exist is
	// an empty result, not an error. The returned FileInfo has Level, MinTXID,
	// MaxTXID, Size and CreatedAt set; CreatedAt is the timestamp stored with
	// the object (see WriteLTXFile), or the object's modification time where
	// none was stored.
	LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error)

	// OpenLTXFile opens a byte range of one file. A size of 0 reads to the end
	// of the file. The returned reader yields exactly the requested bytes or
	// fails; a missing file is an error wrapping ErrNotExist.
	OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error)

	// WriteLTXFile stores a complete LTX file read from r. The write is atomic:
	// readers never observe a partial file. The creation time stored with the
	// object is the LTX header's timestamp (read from r's first bytes), so that
	// point-in-time restore does not depend on upload time.
	WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error)

	// DeleteLTXFiles removes the given files. Files that are already gone are
	// not an error.
	DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error

	// DeleteAll removes every file of the replica.
	DeleteAll(ctx context.Context) error
}

// RawObject is an object of a replica's storage outside the LTX layout.
type RawObject struct {
	// Key is the object's path relative to the replica root, with "/"
	// separators ("generations/0123456789abcdef/snapshots/...").
	Key     string
	Size    int64
	ModTime time.Time
}

// RawReader is implemented by the backends that can read objects outside
// the LTX layout: Litestream v0.3's generations/ tree, which restore reads
// (file and s3). Keys are relative to the replica root.
type RawReader interface {
	// ListRaw returns every object whose key starts with prefix, sorted by
	// key; a missing prefix is an empty result.
	ListRaw(ctx context.Context, prefix string) ([]RawObject, error)
	// OpenRaw opens one object; a missing one is an error wrapping
	// ErrNotExist.
	OpenRaw(ctx context.Context, key string) (io.ReadCloser, error)
}
