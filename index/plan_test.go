package index

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is the CreatedAt the synthetic listings give the state at txid.
func at(txid ltx.TXID) time.Time { return t0.Add(time.Duration(txid) * time.Second) }

// file is a listing entry created when its last transaction was written.
func file(level int, minTXID, maxTXID ltx.TXID) *ltx.FileInfo {
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: 1000, CreatedAt: at(maxTXID)}
}

// createdAt overrides a file's CreatedAt.
func createdAt(f *ltx.FileInfo, t time.Time) *ltx.FileInfo { f.CreatedAt = t; return f }

// l0 returns level-0 files for TXIDs from..to.
func l0(from, to ltx.TXID) []*ltx.FileInfo {
	var out []*ltx.FileInfo
	for txid := from; txid <= to; txid++ {
		out = append(out, file(0, txid, txid))
	}
	return out
}

func listing(parts ...any) []*ltx.FileInfo {
	var out []*ltx.FileInfo
	for _, p := range parts {
		switch p := p.(type) {
		case *ltx.FileInfo:
			out = append(out, p)
		case []*ltx.FileInfo:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("listing: %T", p))
		}
	}
	return out
}

// describe renders a plan's files as "L<level>:<min>-<max>" in decimal.
func describe(files []*ltx.FileInfo) string {
	var parts []string
	for _, f := range files {
		parts = append(parts, fmt.Sprintf("L%d:%d-%d", f.Level, f.MinTXID, f.MaxTXID))
	}
	return strings.Join(parts, " ")
}

func TestPlanFromFiles(t *testing.T) {
	rng := testsupport.Rand(t, 0) // shuffles the listings

	tests := []struct {
		name    string
		files   []*ltx.FileInfo
		txid    ltx.TXID
		ts      time.Time
		want    string   // plan files; empty when an error is expected
		wantErr error    // errors.Is target
		errHas  []string // substrings of the error
	}{
		{
			name:  "snapshot and L0 chain, latest",
			files: listing(file(9, 1, 1), l0(1, 5)),
			want:  "L9:1-1 L0:2-2 L0:3-3 L0:4-4 L0:5-5",
		},
		{
			name:  "L0 chain alone starts at its TXID 1 file",
			files: listing(l0(1, 3)),
			want:  "L0:1-1 L0:2-2 L0:3-3",
		},
		{
			name:  "compaction replaces L0 run",
			files: listing(file(9, 1, 1), l0(1, 5), file(1, 2, 5)),
			want:  "L9:1-1 L1:2-5",
		},
		{
			name:  "target inside a compaction uses L0",
			files: listing(file(9, 1, 1), l0(1, 5), file(1, 2, 5)),
			txid:  3,
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:  "overlapping levels, target at a level-2 boundary",
			files: listing(file(9, 1, 1), l0(1, 12), file(1, 2, 5), file(1, 6, 9), file(1, 10, 12), file(2, 2, 9)),
			txid:  9,
			want:  "L9:1-1 L2:2-9",
		},
		{
			name:  "overlapping levels, target after a level-2 file",
			files: listing(file(9, 1, 1), l0(1, 12), file(1, 2, 5), file(1, 6, 9), file(2, 2, 9)),
			txid:  11,
			want:  "L9:1-1 L2:2-9 L0:10-10 L0:11-11",
		},
		{
			name:  "overlapping levels, target inside level 2 uses level 1",
			files: listing(file(9, 1, 1), l0(1, 12), file(1, 2, 5), file(1, 6, 9), file(2, 2, 9)),
			txid:  7,
			want:  "L9:1-1 L1:2-5 L0:6-6 L0:7-7",
		},
		{
			name:  "same range on two levels prefers the higher level",
			files: listing(file(9, 1, 1), l0(1, 6), file(1, 2, 5), file(2, 2, 5)),
			want:  "L9:1-1 L2:2-5 L0:6-6",
		},
		{
			name:  "newest snapshot at or before the target",
			files: listing(file(9, 1, 1), file(9, 1, 8), l0(1, 10)),
			want:  "L9:1-8 L0:9-9 L0:10-10",
		},
		{
			name:  "older snapshot when the target precedes the newer one",
			files: listing(file(9, 1, 1), file(9, 1, 8), l0(1, 10)),
			txid:  3,
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:  "target equal to a snapshot",
			files: listing(file(9, 1, 1), file(9, 1, 8), l0(1, 10)),
			txid:  8,
			want:  "L9:1-8",
		},
		{
			name:  "level-1 file starting at TXID 1 is a start",
			files: listing(file(1, 1, 5), l0(6, 7)),
			want:  "L1:1-5 L0:6-6 L0:7-7",
		},
		{
			name: "older snapshot when it needs fewer files",
			// L0 9..20 would be 13 files after the newer snapshot; the
			// level-1 compaction after the older one makes 2.
			files: listing(file(9, 1, 1), file(1, 2, 20), l0(9, 20), file(9, 1, 1)),
			want:  "L9:1-1 L1:2-20",
		},
		{
			name: "compaction overlapping a snapshot",
			// The compaction 2-20 overlaps the snapshot at 8; applying it
			// on top of TXID 8 gives TXID 20 (it holds every page changed
			// in 2..20). Equal length: the newer snapshot wins.
			files: listing(file(9, 1, 8), file(9, 1, 1), file(1, 2, 20), l0(9, 20)),
			want:  "L9:1-8 L1:2-20",
		},
		{
			name: "overlap bridges what retention left",
			// Level 0 up to 20 is gone; only the straddling compaction
			// continues the snapshot at 8.
			files: listing(file(9, 1, 8), file(1, 2, 20), l0(21, 22)),
			txid:  22,
			want:  "L9:1-8 L1:2-20 L0:21-21 L0:22-22",
		},
		{
			name:    "a file ending at or before the state does not continue it",
			files:   listing(file(9, 1, 8), file(1, 2, 8), l0(10, 11)),
			txid:    11,
			wantErr: ErrNotAvailable,
		},
		{
			name: "a compaction past the target is not taken",
			// With overlaps allowed, a longer step never strands a chain
			// (whatever continues an earlier state and ends later
			// continues it too); only the exact target limits the steps.
			files: listing(file(9, 1, 1), file(1, 2, 10), l0(2, 12)),
			txid:  9,
			want:  "L9:1-1 L0:2-2 L0:3-3 L0:4-4 L0:5-5 L0:6-6 L0:7-7 L0:8-8 L0:9-9",
		},
		{
			name: "dead end avoided through an overlap",
			// Level-1 files 2-10 and 9-12 overlap: 2-10 then 9-12 is
			// applicable (9 <= 11) and shorter than nine level-0 files.
			files: listing(file(9, 1, 1), file(1, 2, 10), l0(2, 9), file(1, 9, 12)),
			txid:  12,
			want:  "L9:1-1 L1:2-10 L1:9-12",
		},
		{
			// Before, the plan silently stopped at TXID 3 as "latest".
			name:    "gap: latest fails and names the missing TXIDs",
			files:   listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			wantErr: ErrGap,
			errHas:  []string{"TXIDs 0000000000000004-0000000000000004", "level 0 file 0000000000000005-0000000000000005.ltx", "before the gap is TXID 0000000000000003"},
		},
		{
			name:    "gap of several TXIDs at level 1",
			files:   listing(file(9, 1, 1), file(1, 2, 10), file(1, 21, 30), l0(25, 30)),
			wantErr: ErrGap,
			errHas:  []string{"TXIDs 000000000000000b-0000000000000014", "level 1 file 0000000000000015-000000000000001e.ltx"},
		},
		{
			name:  "gap bridged by a compaction is no gap",
			files: listing(file(9, 1, 1), l0(2, 3), l0(5, 6), file(1, 2, 5)),
			want:  "L9:1-1 L1:2-5 L0:6-6",
		},
		{
			name:  "gap healed by a newer snapshot",
			files: listing(file(9, 1, 1), l0(2, 3), l0(5, 6), file(9, 1, 6)),
			want:  "L9:1-6",
		},
		{
			name:  "gap: a TXID before it is planned as usual",
			files: listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			txid:  3,
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:  "gap: a time before it is planned as usual",
			files: listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			ts:    at(3),
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:    "gap: a time after it fails",
			files:   listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			ts:      at(5),
			wantErr: ErrGap,
			errHas:  []string{"TXIDs 0000000000000004-0000000000000004"},
		},
		{
			// Retention deleted L0 3..9 after a compaction (created later
			// than ts) covered them: at ts the newest buildable state is 2,
			// older than what the files show, but nothing is missing.
			name:  "time before a compaction that replaced deleted L0 files is no gap",
			files: listing(file(9, 1, 1), l0(2, 2), createdAt(file(1, 3, 9), at(20)), l0(10, 12)),
			ts:    at(11),
			want:  "L9:1-1 L0:2-2",
		},
		{
			name:    "time after a real gap fails even when retention limits the target",
			files:   listing(file(9, 1, 1), l0(2, 2), createdAt(file(1, 3, 9), at(20)), l0(11, 12)),
			ts:      at(12),
			wantErr: ErrGap,
			errHas:  []string{"TXIDs 000000000000000a-000000000000000a", "before the gap is TXID 0000000000000009"},
		},
		{
			name:  "a snapshot-level file not starting at TXID 1 is never used",
			files: listing(file(9, 1, 1), l0(2, 3), file(9, 2, 3)),
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:    "gap: target after the gap is not available",
			files:   listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			txid:    5,
			wantErr: ErrNotAvailable,
			errHas:  []string{"TXID 0000000000000005", "0000000000000001", "0000000000000003", "TXIDs 0000000000000004-0000000000000004 are in no file"},
		},
		{
			name:    "target beyond history",
			files:   listing(file(9, 1, 1), l0(2, 4)),
			txid:    99,
			wantErr: ErrNotAvailable,
			errHas:  []string{"0000000000000063", "to 0000000000000004"},
		},
		{
			name:    "target before the only snapshot",
			files:   listing(file(9, 1, 5), l0(6, 7)),
			txid:    3,
			wantErr: ErrNotAvailable,
			errHas:  []string{"TXIDs 0000000000000005", "to 0000000000000007"},
		},
		{
			name:    "empty replica",
			files:   nil,
			wantErr: ErrNoSnapshot,
			errHas:  []string{"no LTX files"},
		},
		{
			name:    "no file starts at TXID 1",
			files:   listing(l0(5, 9), file(1, 5, 9)),
			wantErr: ErrNoSnapshot,
			errHas:  []string{"starts at TXID 1"},
		},
		{
			name:  "time between two transactions",
			files: listing(file(9, 1, 1), l0(1, 6)),
			ts:    at(3).Add(500 * time.Millisecond),
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:  "time exactly at a file's creation includes it",
			files: listing(file(9, 1, 1), l0(1, 6)),
			ts:    at(4),
			want:  "L9:1-1 L0:2-2 L0:3-3 L0:4-4",
		},
		{
			name:  "time after everything is the latest",
			files: listing(file(9, 1, 1), l0(1, 6), file(1, 2, 6)),
			ts:    at(100),
			want:  "L9:1-1 L1:2-6",
		},
		{
			name: "compaction created after the target time is not used",
			files: listing(file(9, 1, 1), l0(1, 6),
				createdAt(file(1, 2, 5), at(50))),
			ts:   at(5),
			want: "L9:1-1 L0:2-2 L0:3-3 L0:4-4 L0:5-5",
		},
		{
			name:  "snapshot created late: its L0 twin is used",
			files: listing(createdAt(file(9, 1, 1), at(30)), l0(1, 3)),
			ts:    at(2),
			want:  "L0:1-1 L0:2-2",
		},
		{
			name:    "time before the first state",
			files:   listing(file(9, 1, 1), l0(1, 3)),
			ts:      at(0),
			wantErr: ErrNotAvailable,
			errHas:  []string{"at or before 2026-01-01T00:00:00Z", "0000000000000001 (created 2026-01-01T00:00:01Z)"},
		},
		{
			name:   "TXID and time together",
			files:  listing(file(9, 1, 1)),
			txid:   1,
			ts:     at(1),
			errHas: []string{"not both"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := append([]*ltx.FileInfo(nil), tt.files...)
			rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
			plan, err := PlanFromFiles(files, tt.txid, tt.ts)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("want error, got plan %s", describe(plan.Files))
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %q is not %v", err, tt.wantErr)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(plan.Files); got != tt.want {
				t.Fatalf("plan %s, want %s", got, tt.want)
			}
			last := plan.Files[len(plan.Files)-1]
			if plan.TXID != last.MaxTXID || !plan.Timestamp.Equal(last.CreatedAt) {
				t.Errorf("plan TXID %s at %s, last file ends at %s created %s", plan.TXID, plan.Timestamp, last.MaxTXID, last.CreatedAt)
			}
			if tt.txid != 0 && plan.TXID != tt.txid {
				t.Errorf("plan TXID %s, want %s", plan.TXID, tt.txid)
			}
		})
	}
}

// A long L0 history must plan in well under a second (the VFS plans on open).
func TestPlanFromFilesLarge(t *testing.T) {
	const n = 50000
	files := listing(file(9, 1, 1), l0(1, n))
	for lo := ltx.TXID(2); lo+99 <= n; lo += 100 {
		files = append(files, file(1, lo, lo+99))
	}
	start := time.Now()
	plan, err := PlanFromFiles(files, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("planned %d files in %s: %d files", len(files), time.Since(start), len(plan.Files))
	// 1 snapshot + 499 compactions (2..49901) + L0 49902..50000 (99).
	if plan.TXID != n || len(plan.Files) != 1+499+99 {
		t.Fatalf("plan to %d with %d files", plan.TXID, len(plan.Files))
	}
}

// A gap error carries the plan to the state before the gap, for callers
// that accept it (restore -allow-gap, the VFS), and its bounds.
func TestPlanGapError(t *testing.T) {
	_, err := PlanFromFiles(listing(file(9, 1, 1), l0(2, 3), l0(7, 9), file(1, 7, 9)), 0, time.Time{})
	var gap *GapError
	if !errors.As(err, &gap) {
		t.Fatalf("error %v is not a *GapError", err)
	}
	if gap.TXID != 3 || gap.First != 4 || gap.Last != 6 || gap.Next.MinTXID != 7 || gap.Next.MaxTXID != 9 {
		t.Fatalf("gap %+v", gap)
	}
	if gap.Plan == nil || gap.Plan.TXID != 3 || describe(gap.Plan.Files) != "L9:1-1 L0:2-2 L0:3-3" {
		t.Fatalf("gap plan %+v", gap.Plan)
	}
}

func TestGapAfter(t *testing.T) {
	tests := []struct {
		name  string
		s     ltx.TXID
		files []*ltx.FileInfo
		want  string // "first-last" or "" for no gap
	}{
		{"newest state", 5, listing(l0(1, 5)), ""},
		{"next file follows", 5, listing(l0(1, 6)), ""},
		{"overlap follows", 5, listing(file(1, 2, 9)), ""},
		{"level-0 file missing", 5, listing(l0(1, 5), l0(7, 9)), "7-7 6-6"},
		{"lowest next file named", 5, listing(l0(9, 9), file(1, 8, 12), file(2, 8, 20)), "8-20 6-7"},
		{"malformed files ignored", 5, listing(file(9, 7, 9), &ltx.FileInfo{MinTXID: 9, MaxTXID: 8}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := GapAfter(tt.s, tt.files)
			got := ""
			if g != nil {
				got = fmt.Sprintf("%d-%d %d-%d", g.Next.MinTXID, g.Next.MaxTXID, g.First, g.Last)
				if g.TXID != tt.s || !errors.Is(g, ErrGap) {
					t.Fatalf("gap %+v", g)
				}
			}
			if got != tt.want {
				t.Fatalf("gap %q, want %q", got, tt.want)
			}
		})
	}
}

func TestContinue(t *testing.T) {
	fi := func(level int, min, max ltx.TXID, size int64) *ltx.FileInfo {
		return &ltx.FileInfo{Level: level, MinTXID: min, MaxTXID: max, Size: size}
	}
	tests := []struct {
		name  string
		cur   ltx.TXID
		files []*ltx.FileInfo
		want  string
	}{
		{"nothing new", 10, []*ltx.FileInfo{fi(0, 5, 5, 1), fi(1, 1, 10, 9)}, ""},
		{"level-0 run", 10, []*ltx.FileInfo{fi(0, 11, 11, 1000), fi(0, 12, 12, 1000), fi(0, 13, 13, 1000)}, "L0:11-11 L0:12-12 L0:13-13"},
		{"gap bridged", 10, []*ltx.FileInfo{fi(0, 16, 16, 1000), fi(1, 11, 15, 5000)}, "L1:11-15 L0:16-16"},
		{"unbridgeable gap", 10, []*ltx.FileInfo{fi(0, 16, 16, 1000), fi(0, 17, 17, 1000)}, ""},
		{"overlapping compaction", 10, []*ltx.FileInfo{fi(1, 5, 20, 5000)}, "L1:5-20"},
		{"snapshot continues anything", 10, []*ltx.FileInfo{fi(9, 1, 30, 1<<20), fi(0, 11, 11, 10)}, "L9:1-30"},
		{"smaller files win", 10, []*ltx.FileInfo{
			fi(9, 1, 13, 1<<30), fi(0, 11, 11, 100), fi(0, 12, 12, 100), fi(0, 13, 13, 100),
		}, "L0:11-11 L0:12-12 L0:13-13"},
		{"fewer files at equal bytes", 10, []*ltx.FileInfo{
			fi(1, 11, 13, 300), fi(0, 11, 11, 100), fi(0, 12, 12, 100), fi(0, 13, 13, 100),
		}, "L1:11-13"},
		{"reach the highest TXID", 10, []*ltx.FileInfo{
			fi(0, 11, 11, 10), fi(0, 12, 12, 10), fi(2, 11, 40, 1<<20), fi(0, 41, 41, 10),
		}, "L2:11-40 L0:41-41"},
		{"malformed files ignored", 10, []*ltx.FileInfo{nil, fi(0, 0, 11, 1), fi(0, 12, 11, 1), fi(9, 11, 12, 1), fi(0, 11, 11, 1)}, "L0:11-11"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(Continue(tc.cur, tc.files)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
