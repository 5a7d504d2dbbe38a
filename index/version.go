package index

import (
	"context"
	"fmt"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote"
)

// Pages per chunk of the page array. A chunk is 24 KiB; applying a file copies
// each chunk it touches once, so small L0 files stay cheap.
const (
	chunkShift = 10
	chunkSize  = 1 << chunkShift
	chunkMask  = chunkSize - 1
)

// chunk holds where the current versions of chunkSize pages live: each
// page's frame, as a remote.Range of the file holding it (File nil: no file
// wrote the page).
type chunk [chunkSize]remote.Range

// Version is the page index of the database at one TXID. It is immutable:
// Apply returns a new Version that shares every untouched chunk with its
// parent, so readers may keep using (pinning) an old version for as long as
// they like, concurrently with Apply, without locks. The nil *Version is the
// empty database before any snapshot; only Apply may be called on it.
type Version struct {
	txid      ltx.TXID
	pageSize  uint32
	commit    uint32
	timestamp time.Time
	// checksum is the post-apply checksum of the database at txid, from
	// the last file applied, when that file tracks checksums (0: unknown;
	// Litestream v0.5 writes files without them).
	checksum ltx.Checksum
	// chunks[i] holds pages i*chunkSize+1 .. (i+1)*chunkSize; a nil chunk has
	// no pages. len(chunks) covers exactly commit pages.
	chunks []*chunk
}

// TXID returns the transaction the version is at.
func (v *Version) TXID() ltx.TXID { return v.txid }

// PageSize returns the database page size in bytes.
func (v *Version) PageSize() uint32 { return v.pageSize }

// Commit returns the database size in pages.
func (v *Version) Commit() uint32 { return v.commit }

// Timestamp returns the LTX header timestamp of the last file applied.
func (v *Version) Timestamp() time.Time { return v.timestamp }

// Lookup returns where page pgno lives: the byte range of its frame, which
// pagecache.Request takes as it is. It reports false for page 0, pages
// beyond Commit, the lock page, and pages no file has written (which read as
// zeros).
func (v *Version) Lookup(pgno uint32) (remote.Range, bool) {
	if pgno == 0 || pgno > v.commit {
		return remote.Range{}, false
	}
	c := v.chunks[(pgno-1)>>chunkShift]
	if c == nil {
		return remote.Range{}, false
	}
	e := c[(pgno-1)&chunkMask]
	return e, e.File != nil
}

// Apply returns the version after fi. fi must continue v (Follows: fi's
// MinTXID is at most v.TXID()+1 and its MaxTXID above v.TXID(); an
// overlapping compaction is sound) with the same page size, or be a snapshot
// (MinTXID 1), which replaces v entirely. When fi and the state both track
// checksums and fi starts exactly after v, fi's pre-apply checksum must be
// v's post-apply checksum. Pages beyond fi's Commit are dropped. The cost is
// O(pages in fi) plus a copy of the chunk pointer array (Commit/1024 words)
// and of each touched chunk; v is unchanged.
func (v *Version) Apply(fi *FileIndex) (*Version, error) {
	h := fi.Header
	fail := func(dmg bool, format string, args ...any) (*Version, error) {
		err := fmt.Errorf(format, args...)
		if dmg {
			err = damaged(err)
		}
		return nil, &FileError{Op: "apply", Info: fi.Info, Err: err}
	}
	if h.MinTXID != fi.Info.MinTXID || h.MaxTXID != fi.Info.MaxTXID {
		return fail(true, "header says TXIDs %s-%s", h.MinTXID, h.MaxTXID)
	}
	base := v
	switch {
	case h.MinTXID == 1:
		base = nil // a snapshot holds every page: start over
	case v == nil:
		return fail(false, "the first file must be a snapshot (start at TXID 1), not at TXID %s", h.MinTXID)
	case !Follows(fi.Info, v.txid):
		return fail(false, "does not continue the index at TXID %s (needs a file starting at or before %s and ending after it)", v.txid, v.txid+1)
	case h.PageSize != v.pageSize:
		return fail(true, "page size %d differs from the database's %d", h.PageSize, v.pageSize)
	case !h.NoChecksum() && v.checksum != 0 && h.MinTXID == v.txid+1 && h.PreApplyChecksum != v.checksum:
		return fail(true, "pre-apply checksum %s differs from the post-apply checksum %s of TXID %s: the file belongs to another history",
			h.PreApplyChecksum, v.checksum, v.txid)
	}
	var sum ltx.Checksum
	if !h.NoChecksum() {
		sum = fi.Trailer.PostApplyChecksum
	}

	nchunks := int((uint64(h.Commit) + chunkMask) >> chunkShift)
	chunks := make([]*chunk, nchunks)
	owned := make([]bool, nchunks) // chunks already copied in this Apply
	if base != nil {
		copy(chunks, base.chunks)
		// Truncation: the last kept chunk may hold pages beyond the new
		// commit. Clear them, or a later growth of the database would make
		// those stale entries visible again.
		if h.Commit < base.commit && h.Commit&chunkMask != 0 {
			last := nchunks - 1
			if old := chunks[last]; old != nil {
				c := new(chunk)
				copy(c[:h.Commit&chunkMask], old[:h.Commit&chunkMask])
				chunks[last], owned[last] = c, true
			}
		}
	}

	for _, p := range fi.Pages {
		if p.Pgno == 0 || p.Pgno > h.Commit {
			return fail(true, "page %d is outside the database size of %d pages", p.Pgno, h.Commit)
		}
		i := (p.Pgno - 1) >> chunkShift
		if !owned[i] {
			c := new(chunk)
			if old := chunks[i]; old != nil {
				*c = *old
			}
			chunks[i], owned[i] = c, true
		}
		chunks[i][(p.Pgno-1)&chunkMask] = remote.Range{File: fi.Info, Offset: p.Offset, Size: p.Size}
	}

	return &Version{
		txid:      h.MaxTXID,
		pageSize:  h.PageSize,
		commit:    h.Commit,
		timestamp: time.UnixMilli(h.Timestamp).UTC(),
		checksum:  sum,
		chunks:    chunks,
	}, nil
}

// DefaultIndexParallelism bounds the concurrent page-index reads of Build.
const DefaultIndexParallelism = 16

// Build reads the page indexes of the plan's files in parallel and applies
// them in order.
func Build(ctx context.Context, c remote.Client, plan *Plan) (*Version, error) {
	if plan == nil || len(plan.Files) == 0 {
		return nil, fmt.Errorf("build index: %w: the plan has no files", ErrNoSnapshot)
	}
	fis, err := ReadFileIndexes(ctx, c, plan.Files, DefaultIndexParallelism)
	if err != nil {
		return nil, err
	}
	var v *Version
	for _, fi := range fis {
		if v, err = v.Apply(fi); err != nil {
			return nil, err
		}
	}
	if v.TXID() != plan.TXID {
		return nil, fmt.Errorf("build index: the plan's files end at TXID %s, not at its target %s", v.TXID(), plan.TXID)
	}
	return v, nil
}

// ReadFileIndexes reads the indexes of files with at most parallelism
// concurrent reads (<= 0: DefaultIndexParallelism). The result is in the
// order of files.
func ReadFileIndexes(ctx context.Context, c remote.Client, files []*ltx.FileInfo, parallelism int) ([]*FileIndex, error) {
	if parallelism <= 0 {
		parallelism = DefaultIndexParallelism
	}
	fis := make([]*FileIndex, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelism)
	for i, info := range files {
		g.Go(func() error {
			fi, err := ReadFileIndex(gctx, c, info)
			fis[i] = fi
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return fis, nil
}
