package writer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
)

// maxCompactInputs bounds how many input files one compaction output merges.
// Each input is an open remote stream with a decoder and one page buffer, so
// this bounds memory and connections; a level that fell further behind is
// caught up by several outputs in the same tick.
const maxCompactInputs = 64

// Compact merges the files of level-1 that level does not cover yet into new
// files of level (1..8) and returns them. It catches the level fully up: when
// more than maxCompactInputs files are waiting, several files are written.
//
// Where a level starts: after its own last file; if it has none, after the
// newest TXID any higher level (including snapshots) covers, so that an
// empty level never re-merges history the replica already holds at a higher
// level; and if no higher level holds anything either (a fresh replica),
// after the first sync's level-0 file starting at TXID 1, the full copy
// every restore starts from until the first level-9 snapshot (retention
// keeps it), so that no level gets a database-sized copy of it.
//
// Compaction never touches SQLite; it reads its inputs from the remote and
// streams them through ltxframe.Compact straight into the upload: newest page
// wins, pages past the final commit are dropped, the output carries the
// newest input's timestamp, Litestream's NoChecksum flag and no WAL fields,
// and its pages are in the LZ4 frame encoding with content checksums.
func (d *DB) Compact(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if level < 1 || level >= remote.SnapshotLevel {
		return nil, fmt.Errorf("compact %s: level %d is not a compaction level (1..%d)", d.path, level, remote.SnapshotLevel-1)
	}
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	out, err := compactLevel(ctx, d.client, level, d.opts.StagingDir, d.log)
	if errors.Is(err, remote.ErrNotExist) {
		// An input someone else removed: the failed read made the writer
		// forget what it knew of the replica (known.go), so planning
		// again lists the remote and merges what is really there.
		more, err := compactLevel(ctx, d.client, level, d.opts.StagingDir, d.log)
		return append(out, more...), err
	}
	return out, err
}

// compactLevel is Compact without the DB: it needs only the remote.
func compactLevel(ctx context.Context, c remote.Client, level int, spillDir string, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}) ([]*ltx.FileInfo, error) {
	cursor, err := levelCursor(ctx, c, level)
	if err != nil {
		return nil, err
	}
	// Level-0 files are one TXID each, so the seek is exact there; higher
	// source levels are listed whole (retention keeps them short) so that a
	// file straddling the cursor is still seen.
	seek := ltx.TXID(0)
	if level-1 == remote.L0 {
		seek = cursor + 1
	}
	src, err := c.LTXFiles(ctx, level-1, seek)
	if err != nil {
		return nil, fmt.Errorf("compact level %d: list level %d: %w", level, level-1, err)
	}
	runs := pendingInputs(src, cursor)
	if len(runs) == 0 {
		return nil, nil
	}
	if first := runs[0][0]; cursor != 0 && !index.Follows(first, cursor) {
		// The source level has a gap after what this level covers (e.g. a
		// replica written by something else, or files deleted by hand).
		// Merging what is there keeps the level useful; the plan bridges or
		// skips the gap across levels.
		log.Warn("compaction source does not continue the level", "level", level,
			"covered_through", cursor.String(), "next_source", remote.FileDesc(level-1, first.MinTXID, first.MaxTXID))
	}
	var out []*ltx.FileInfo
	for _, run := range runs {
		for chunk := range slices.Chunk(run, maxCompactInputs) {
			start := time.Now()
			info, err := compactFiles(ctx, c, level, chunk, spillDir)
			if err != nil {
				return out, err
			}
			log.Info("compacted", "level", level, "min_txid", info.MinTXID.String(), "max_txid", info.MaxTXID.String(),
				"inputs", len(chunk), "size", info.Size, "duration", time.Since(start).Round(time.Millisecond))
			out = append(out, info)
		}
	}
	return out, nil
}

// levelCursor returns the TXID through which level already covers history:
// its last file's MaxTXID, or when it is empty the highest MaxTXID of any
// level above it, or when those are empty too the MaxTXID of the level-0
// file starting at TXID 1 (0 if none).
func levelCursor(ctx context.Context, c remote.Client, level int) (ltx.TXID, error) {
	var above ltx.TXID
	for l := level; l <= remote.MaxLevel; l++ {
		files, err := c.LTXFiles(ctx, l, 0)
		if err != nil {
			return 0, fmt.Errorf("compact level %d: list level %d: %w", level, l, err)
		}
		var hi ltx.TXID
		for _, f := range files {
			hi = max(hi, f.MaxTXID)
		}
		if l == level {
			if hi != 0 {
				return hi, nil
			}
			continue
		}
		above = max(above, hi)
	}
	if above != 0 {
		return above, nil
	}
	base, err := firstSyncFile(ctx, c)
	if err != nil {
		return 0, fmt.Errorf("compact level %d: %w", level, err)
	}
	if base != nil {
		return base.MaxTXID, nil
	}
	return 0, nil
}

// firstSyncFile returns the level-0 file that starts at TXID 1 (the first
// sync's full copy of the database), or nil if there is none.
func firstSyncFile(ctx context.Context, c remote.Client) (*ltx.FileInfo, error) {
	l0, err := c.LTXFiles(ctx, remote.L0, 1)
	if err != nil {
		return nil, fmt.Errorf("list level 0: %w", err)
	}
	if len(l0) > 0 && l0[0].MinTXID == 1 {
		return l0[0], nil
	}
	return nil, nil
}

// pendingInputs returns the src files that extend past cursor, in TXID
// order, as runs without gaps: within a run each file continues the state
// the previous one ends at (index.Follows: an overlap is fine); a gap starts
// a new run, so that a hole in the source level never stalls the level
// above it.
func pendingInputs(src []*ltx.FileInfo, cursor ltx.TXID) [][]*ltx.FileInfo {
	files := slices.Clone(src)
	slices.SortFunc(files, func(a, b *ltx.FileInfo) int {
		if a.MinTXID != b.MinTXID {
			return cmpTXID(a.MinTXID, b.MinTXID)
		}
		return cmpTXID(b.MaxTXID, a.MaxTXID) // longer first
	})
	var runs [][]*ltx.FileInfo
	var run []*ltx.FileInfo
	for _, f := range files {
		if f.MaxTXID <= cursor || f.MinTXID > f.MaxTXID {
			continue
		}
		if len(run) > 0 {
			last := run[len(run)-1]
			if f.MaxTXID <= last.MaxTXID {
				continue // inside what the run already has
			}
			if !index.Follows(f, last.MaxTXID) {
				runs = append(runs, run)
				run = nil
			}
		}
		run = append(run, f)
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs
}

func cmpTXID(a, b ltx.TXID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compactFiles merges inputs (contiguous, of level-1) into one file of level.
// The output is streamed into the upload through a pipe; the remote write is
// atomic, so a failed merge leaves nothing behind.
func compactFiles(ctx context.Context, c remote.Client, level int, inputs []*ltx.FileInfo, spillDir string) (*ltx.FileInfo, error) {
	minTXID, maxTXID := inputs[0].MinTXID, inputs[len(inputs)-1].MaxTXID
	desc := remote.FileDesc(level, minTXID, maxTXID)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Each input must be what its name says (Input.MinTXID/MaxTXID): the
	// output is named from the listing but its header comes from the
	// inputs' headers, so a swapped or stale input would otherwise yield a
	// file whose name and content disagree.
	ins := make([]ltxframe.Input, 0, len(inputs))
	var closers []io.Closer
	defer func() {
		for _, rc := range closers {
			rc.Close()
		}
	}()
	for _, in := range inputs {
		name := remote.FileDesc(in.Level, in.MinTXID, in.MaxTXID)
		rc, err := c.OpenLTXFile(ctx, in.Level, in.MinTXID, in.MaxTXID, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("compact %s: open input %s: %w", desc, name, err)
		}
		closers = append(closers, rc)
		ins = append(ins, ltxframe.Input{R: bufio.NewReaderSize(rc, 64<<10), Name: name, MinTXID: in.MinTXID, MaxTXID: in.MaxTXID})
	}

	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		// Pages in the LZ4 frame encoding carry a checksum each, which lets
		// the VFS verify every page it reads by range (ltxframe).
		_, err := ltxframe.Compact(ctx, pw, ins, ltx.HeaderFlagNoChecksum, spillDir)
		pw.CloseWithError(err) // nil: the reader sees EOF
		errc <- err
	}()
	info, werr := c.WriteLTXFile(ctx, level, minTXID, maxTXID, pr)
	pr.CloseWithError(errors.New("upload ended")) // unblocks the compactor if the upload stopped early
	if werr != nil {
		cancel()
	}
	cerr := <-errc
	if cerr != nil {
		return nil, fmt.Errorf("compact %s: %w", desc, cerr)
	}
	if werr != nil {
		return nil, fmt.Errorf("compact %s: upload: %w", desc, werr)
	}
	return info, nil
}
