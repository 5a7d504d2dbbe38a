package writer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// EnforceRetention deletes the remote files no retained restore needs and
// returns them. The rules (Litestream v0.5's):
//
//   - Snapshots (level 9) older than SnapshotRetention are deleted; the
//     newest snapshot is always kept. The first sync's level-0 file (it
//     starts at TXID 1, so it holds every page) counts as a snapshot here:
//     until the first level-9 snapshot it is the base every restore starts
//     from, and compaction starts after it (compact.go), so it is deleted
//     only as an old snapshot would be, never by the level-0 rule.
//   - Files of levels 1..8 that end at or before the oldest kept snapshot are
//     deleted, but a file of a configured level below the top one only once
//     the level above has merged it (its compaction must not lose inputs).
//   - Level-0 files are deleted once level 1 covers them (a snapshot when
//     no compaction level is configured) and they are older than L0Retention.
//
// A file is deleted only after it has been seen deletable for RetentionGrace,
// so that a restore or reader that planned it just before has time to read
// it. With RetentionDisabled nothing is deleted.
func (d *DB) EnforceRetention(ctx context.Context) ([]*ltx.FileInfo, error) {
	if d.opts.RetentionDisabled {
		return nil, nil
	}
	start := time.Now()
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	files, err := remote.ListAll(ctx, d.client)
	if err != nil {
		return nil, fmt.Errorf("retention for %s: %w", d.path, err)
	}
	now := time.Now()
	cands, census := retentionCandidates(files, now, retentionRules{
		topLevel:          len(d.opts.Levels),
		snapshotRetention: d.opts.SnapshotRetention,
		l0Retention:       d.opts.L0Retention,
	})

	// The grace period: remember when each file was first seen deletable.
	if d.obsolete == nil {
		d.obsolete = make(map[remote.FileID]time.Time)
	}
	seen := make(map[remote.FileID]bool, len(cands))
	var del []*ltx.FileInfo
	for _, f := range cands {
		k := remote.IDOf(f)
		seen[k] = true
		first, ok := d.obsolete[k]
		if !ok {
			d.obsolete[k] = now
			first = now
		}
		if now.Sub(first) >= d.opts.RetentionGrace {
			del = append(del, f)
		}
	}
	for k := range d.obsolete {
		if !seen[k] {
			delete(d.obsolete, k) // gone, or needed again (e.g. a snapshot was deleted by hand)
		}
	}
	if len(del) == 0 {
		d.observeRetention(census)
		return nil, nil
	}
	if err := d.client.DeleteLTXFiles(ctx, del); err != nil {
		return nil, fmt.Errorf("retention for %s: delete %d files: %w", d.path, len(del), err)
	}
	for _, f := range del {
		if f.Level == remote.L0 {
			census.Deleted++
		}
	}
	d.observeRetention(census)
	for _, f := range del {
		delete(d.obsolete, remote.IDOf(f))
	}
	logDeleted(d.log, del, time.Since(start))
	return del, nil
}

// logDeleted writes one info line per level that retention deleted from:
// how many files, the TXID range they spanned and their bytes.
func logDeleted(log *slog.Logger, del []*ltx.FileInfo, elapsed time.Duration) {
	type span struct {
		n        int
		min, max ltx.TXID
		size     int64
	}
	var levels [remote.MaxLevel + 1]*span
	for _, f := range del {
		if f.Level < 0 || f.Level > remote.MaxLevel {
			continue
		}
		s := levels[f.Level]
		if s == nil {
			s = &span{min: f.MinTXID, max: f.MaxTXID}
			levels[f.Level] = s
		}
		s.n++
		s.min, s.max = min(s.min, f.MinTXID), max(s.max, f.MaxTXID)
		s.size += f.Size
	}
	for level, s := range levels {
		if s != nil {
			log.Info("retention deleted", "level", level, "files", s.n, "min_txid", s.min.String(), "max_txid", s.max.String(),
				"size", s.size, "duration", elapsed.Round(time.Millisecond))
		}
	}
}

type retentionRules struct {
	// topLevel is the highest configured compaction level (0: none).
	topLevel          int
	snapshotRetention time.Duration
	l0Retention       time.Duration
}

// L0Census counts the level-0 files of a retention pass by what happened to
// them, as Litestream's litestream_l0_retention_files_total gauge does.
type L0Census struct {
	// Deleted: the level-0 files the pass deleted (Litestream's "eligible").
	Deleted int
	// NotCompacted: level-0 files no higher level covers yet (the newest
	// level-0 file, kept to resume from, counts here or under TooRecent).
	NotCompacted int
	// TooRecent: covered, but younger than L0Retention or kept as newest.
	TooRecent int
}

// retentionCandidates applies the rules EnforceRetention documents to a
// listing of every level, without the grace period. The census counts the
// level-0 files it keeps (its Deleted is left to the caller).
func retentionCandidates(files []*ltx.FileInfo, now time.Time, r retentionRules) (out []*ltx.FileInfo, census L0Census) {
	byLevel := make([][]*ltx.FileInfo, remote.MaxLevel+1)
	levelMax := make([]ltx.TXID, remote.MaxLevel+2)
	for _, f := range files {
		if f.Level < 0 || f.Level > remote.MaxLevel {
			continue
		}
		byLevel[f.Level] = append(byLevel[f.Level], f)
		levelMax[f.Level] = max(levelMax[f.Level], f.MaxTXID)
	}

	snaps := expiredSnapshots(byLevel, now, r.snapshotRetention)
	out = append(out, snaps.expired...)
	out = append(out, unreachableHistory(byLevel, levelMax, snaps.oldestKept, r.topLevel)...)

	// Level 0: covered by level 1 (or a snapshot without compaction) and
	// older than the L0 retention.
	cover := levelMax[remote.SnapshotLevel]
	if r.topLevel > 0 {
		cover = levelMax[1]
	}
	// The newest level-0 file is kept: it records the WAL position the
	// writer resumes from after a restart without a new snapshot.
	for _, f := range byLevel[remote.L0] {
		switch {
		case f == snaps.l0Base && snaps.baseKept:
			census.TooRecent++ // kept as a snapshot
		case f.MaxTXID > cover:
			census.NotCompacted++
		case f.MaxTXID < levelMax[remote.L0] && now.Sub(f.CreatedAt) > r.l0Retention:
			out = append(out, f)
		default:
			census.TooRecent++
		}
	}
	return out, census
}

// snapshotVerdict is what the snapshot rule decided.
type snapshotVerdict struct {
	expired    []*ltx.FileInfo // level-9 snapshots to delete
	oldestKept ltx.TXID        // max TXID of the oldest kept full copy (0: none)
	l0Base     *ltx.FileInfo   // the first sync's level-0 file, if it counts as a snapshot
	baseKept   bool            // l0Base is kept as a snapshot
}

// expiredSnapshots applies the snapshot rule to the snapshots, and to the
// first sync's level-0 file as the oldest of them: keep the newest and
// every one younger than the retention. The level-0 base is listed first
// (on a tie with a level-9 snapshot at the same TXID, that snapshot is the
// newest and the one kept). (A level-9 snapshot as old as the base, such
// as the copy at TXID 1 that earlier versions uploaded, makes it
// redundant: it is then an ordinary level-0 file.) An expired base is not
// in expired: the level-0 rule decides for it.
func expiredSnapshots(byLevel [][]*ltx.FileInfo, now time.Time, retention time.Duration) (v snapshotVerdict) {
	var snaps []*ltx.FileInfo
	for _, f := range byLevel[remote.L0] {
		if f.MinTXID == 1 && !slices.ContainsFunc(byLevel[remote.SnapshotLevel], func(s *ltx.FileInfo) bool { return s.MaxTXID <= f.MaxTXID }) {
			v.l0Base = f
			snaps = append(snaps, f)
		}
	}
	snaps = append(snaps, byLevel[remote.SnapshotLevel]...)
	slices.SortStableFunc(snaps, func(a, b *ltx.FileInfo) int { return cmpTXID(a.MaxTXID, b.MaxTXID) })
	for i, s := range snaps {
		newest := i == len(snaps)-1
		if !newest && now.Sub(s.CreatedAt) > retention {
			if s != v.l0Base {
				v.expired = append(v.expired, s)
			}
			continue
		}
		if s == v.l0Base {
			v.baseKept = true
		}
		if v.oldestKept == 0 {
			v.oldestKept = s.MaxTXID
		}
	}
	return v
}

// unreachableHistory returns the files of levels 1..8 that end at or
// before the oldest kept full copy: no kept starting point reaches them. A
// file of a configured level below the top one goes only once the level
// above has merged it (that compaction must not lose its inputs).
func unreachableHistory(byLevel [][]*ltx.FileInfo, levelMax []ltx.TXID, oldestKept ltx.TXID, topLevel int) []*ltx.FileInfo {
	if oldestKept == 0 {
		return nil
	}
	var out []*ltx.FileInfo
	for level := 1; level < remote.SnapshotLevel; level++ {
		for _, f := range byLevel[level] {
			if f.MaxTXID > oldestKept {
				continue
			}
			if level < topLevel && f.MaxTXID > levelMax[level+1] {
				continue // the next level has not merged it yet
			}
			out = append(out, f)
		}
	}
	return out
}
