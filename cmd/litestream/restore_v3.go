package main

// Restoring a Litestream v0.3 replica: the generations/ layout, in which a
// generation holds LZ4-compressed snapshots of the database file and
// LZ4-compressed segments of its WAL files:
//
//	generations/<16 hex>/snapshots/<index %08x>.snapshot.lz4
//	generations/<16 hex>/wal/<index %08x>_<offset %08x>.wal.lz4
//
// Litestream v0.5.18 restores these; so does this program, the same way:
// the newest snapshot (at or before -timestamp), then each WAL index from
// the snapshot's on, its segments concatenated into a WAL file and
// checkpointed into the database by SQLite.

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/pierrec/lz4/v4"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/restore"
)

// errNoV3Backup: the replica holds no v0.3 snapshot either.
var errNoV3Backup = errors.New("no v0.3 backup")

var (
	v3SnapshotRE = regexp.MustCompile(`^generations/([0-9a-f]{16})/snapshots/([0-9a-f]{8})\.snapshot\.lz4$`)
	v3SegmentRE  = regexp.MustCompile(`^generations/([0-9a-f]{16})/wal/([0-9a-f]{8})_([0-9a-f]{8,16})\.wal\.lz4$`)
)

// v3Object is a snapshot (offset -1) or a WAL segment of a v0.3 replica.
type v3Object struct {
	gen     string
	index   int
	offset  int64
	key     string
	created time.Time
}

// listV3 lists a v0.3 replica's snapshots and WAL segments.
func listV3(ctx context.Context, raw remote.RawReader) (snaps, segs []v3Object, err error) {
	objs, err := raw.ListRaw(ctx, "generations/")
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		if m := v3SnapshotRE.FindStringSubmatch(o.Key); m != nil {
			idx, _ := strconv.ParseInt(m[2], 16, 64)
			snaps = append(snaps, v3Object{gen: m[1], index: int(idx), offset: -1, key: o.Key, created: o.ModTime})
		} else if m := v3SegmentRE.FindStringSubmatch(o.Key); m != nil {
			idx, _ := strconv.ParseInt(m[2], 16, 64)
			off, _ := strconv.ParseInt(m[3], 16, 64)
			segs = append(segs, v3Object{gen: m[1], index: int(idx), offset: off, key: o.Key, created: o.ModTime})
		}
	}
	return snaps, segs, nil
}

// restoreV3 restores a v0.3 replica to p.output: the latest state, or the
// state at p.timestamp. v0.3 has no TXIDs.
func (m *Main) restoreV3(ctx context.Context, client remote.Client, p restoreParams, logger *slog.Logger) (*restore.Result, error) {
	raw, ok := client.(remote.RawReader)
	if !ok {
		return nil, errNoV3Backup
	}
	snaps, segs, err := listV3(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("list v0.3 generations: %w", err)
	}
	if len(snaps) == 0 {
		return nil, errNoV3Backup
	}
	if p.txid != 0 {
		return nil, fmt.Errorf("the replica is in Litestream v0.3's layout (generations/), which has no TXIDs: restore its latest state or use -timestamp")
	}
	snap, apply, err := planV3(snaps, segs, p.timestamp)
	if err != nil {
		return nil, err
	}
	logger.Info("restoring a Litestream v0.3 replica", "generation", snap.gen, "snapshot-index", snap.index, "wal-segments", len(apply))

	if _, err := os.Stat(p.output); err == nil && !p.force {
		return nil, fmt.Errorf("cannot restore, output path already exists: %s", p.output)
	}
	tmp := p.output + ".tmp"
	cleanup := func() {
		for _, sfx := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(tmp + sfx)
		}
	}
	cleanup()
	defer cleanup()
	n, err := copyLZ4(ctx, raw, snap.key, tmp, false)
	if err != nil {
		return nil, fmt.Errorf("download v0.3 snapshot %s: %w", snap.key, err)
	}
	walBytes, err := applyV3WAL(ctx, raw, tmp, snap.index, apply)
	if err != nil {
		return nil, err
	}
	// The same publication as a v0.5 restore's: re-checked output, stale
	// WAL and journal removed first (with -force), rename, directory fsync.
	if _, err := restore.Publish(tmp, p.output, p.force); err != nil {
		return nil, err
	}
	if err := integrityCheck(ctx, p.output, p.integrity); err != nil {
		return nil, err
	}
	res := &restore.Result{Timestamp: snap.created, Files: 1 + len(apply), Bytes: n + walBytes}
	if last := len(apply); last > 0 {
		res.Timestamp = apply[last-1].created
	}
	if fi, err := os.Stat(p.output); err == nil {
		if ps, err := pageSize(p.output); err == nil && ps > 0 {
			res.PageSize, res.Commit = ps, uint32(fi.Size()/int64(ps))
		}
	}
	return res, nil
}

// planV3 chooses the newest snapshot created at or before ts (any, if ts is
// zero) and the WAL segments of its generation from its index on, created
// at or before ts, in (index, offset) order.
func planV3(snaps, segs []v3Object, ts time.Time) (*v3Object, []v3Object, error) {
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].created.Before(snaps[j].created) })
	var snap *v3Object
	for i := len(snaps) - 1; i >= 0; i-- {
		if ts.IsZero() || !snaps[i].created.After(ts) {
			snap = &snaps[i]
			break
		}
	}
	if snap == nil {
		return nil, nil, fmt.Errorf("no v0.3 snapshot was created at or before %s (the oldest is from %s)",
			ts.Format(time.RFC3339), snaps[0].created.Format(time.RFC3339))
	}
	var apply []v3Object
	for _, s := range segs {
		if s.gen == snap.gen && s.index >= snap.index && (ts.IsZero() || !s.created.After(ts)) {
			apply = append(apply, s)
		}
	}
	sort.Slice(apply, func(i, j int) bool {
		if apply[i].index != apply[j].index {
			return apply[i].index < apply[j].index
		}
		return apply[i].offset < apply[j].offset
	})
	return snap, apply, nil
}

// applyV3WAL applies the WAL segments to the database at tmp, starting at
// WAL index first, and returns the bytes downloaded. Each WAL index is one
// WAL file: its segments, contiguous from offset 0, then a checkpoint into
// the database. A missing index or segment is an error.
func applyV3WAL(ctx context.Context, raw remote.RawReader, tmp string, first int, apply []v3Object) (int64, error) {
	expect := first
	var offset, total int64
	open := false
	for _, s := range apply {
		if s.offset == 0 {
			if open {
				if err := checkpointV3(ctx, tmp); err != nil {
					return 0, err
				}
			}
			if s.index != expect {
				return 0, fmt.Errorf("v0.3 replica: missing WAL index %08x (next is %08x)", expect, s.index)
			}
			expect++
			offset, open = 0, true
		} else if !open || s.offset != offset {
			return 0, fmt.Errorf("v0.3 replica: missing WAL segment %08x at offset %d (next is %08x_%08x)", s.index, offset, s.index, s.offset)
		}
		n, err := copyLZ4(ctx, raw, s.key, tmp+"-wal", s.offset > 0)
		if err != nil {
			return 0, fmt.Errorf("download v0.3 WAL segment %s: %w", s.key, err)
		}
		offset += n
		total += n
	}
	if open {
		if err := checkpointV3(ctx, tmp); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// copyLZ4 decompresses an object into a file (appending with appendTo),
// synced, and returns the bytes written.
func copyLZ4(ctx context.Context, raw remote.RawReader, key, path string, appendTo bool) (int64, error) {
	rc, err := raw.OpenRaw(ctx, key)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReader(rc)
	// v0.3 may have encrypted it (its age: section) with no identity set
	// here: say so rather than fail to decompress.
	head, _ := br.Peek(len("age-encryption.org/v1\n"))
	if err := remote.ExplainHeader(head, nil); err != nil {
		return 0, err
	}
	n, err := io.Copy(f, lz4.NewReader(br))
	if err != nil {
		return n, err
	}
	return n, f.Sync()
}

// checkpointV3 applies the WAL file beside the database at path to it
// (SQLite checks the frames' salts and checksums and applies up to the
// last commit) and removes the WAL.
func checkpointV3(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path}).String())
	if err != nil {
		return fmt.Errorf("apply v0.3 WAL to %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("apply v0.3 WAL to %s: %w", path, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("apply v0.3 WAL to %s: %w", path, err)
	}
	_ = os.Remove(path + "-wal")
	_ = os.Remove(path + "-shm")
	return nil
}

// pageSize reads the page size from a database file's header.
func pageSize(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	hdr := make([]byte, 18)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, err
	}
	ps := uint32(hdr[16])<<8 | uint32(hdr[17])
	if ps == 1 {
		ps = 65536
	}
	return ps, nil
}
