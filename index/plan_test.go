package index

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
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
	seed := uint64(time.Now().UnixNano())
	t.Logf("listing shuffle seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

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
			name:  "gap: latest is before the gap",
			files: listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			want:  "L9:1-1 L0:2-2 L0:3-3",
		},
		{
			name:    "gap: target after the gap is not available",
			files:   listing(file(9, 1, 1), l0(2, 3), l0(5, 6)),
			txid:    5,
			wantErr: ErrNotAvailable,
			errHas:  []string{"TXID 0000000000000005", "0000000000000001", "0000000000000003"},
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
