package writer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

func TestRetentionCandidates(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	fi := func(level int, lo, hi ltx.TXID, created time.Time) *ltx.FileInfo {
		return &ltx.FileInfo{Level: level, MinTXID: lo, MaxTXID: hi, CreatedAt: created}
	}
	rules := retentionRules{topLevel: 2, snapshotRetention: time.Hour, l0Retention: 5 * time.Minute}
	for _, tc := range []struct {
		name  string
		files []*ltx.FileInfo
		rules retentionRules
		want  []string
		// census of the level-0 files kept: not compacted, too recent
		census L0Census
	}{
		{
			name: "newest snapshot always kept",
			files: []*ltx.FileInfo{
				fi(9, 1, 1, ago(48*time.Hour)),
			},
			rules: rules,
		},
		{
			name: "old snapshots and the levels before the oldest kept one",
			files: []*ltx.FileInfo{
				fi(9, 1, 1, ago(3*time.Hour)),
				fi(9, 1, 10, ago(2*time.Hour)),
				fi(9, 1, 20, ago(30*time.Minute)),
				fi(9, 1, 30, ago(time.Minute)),
				fi(1, 2, 10, ago(2*time.Hour)),
				fi(1, 11, 20, ago(40*time.Minute)),
				fi(1, 21, 30, ago(time.Minute)),
				fi(2, 2, 20, ago(30*time.Minute)),
			},
			rules: rules,
			// L1 11-20 ends at the oldest kept snapshot (20) and level 2
			// merged it; L2 2-20 is the top level.
			want: []string{"9/1-1", "9/1-a", "1/2-a", "1/b-14", "2/2-14"},
		},
		{
			name: "level 1 waits for level 2 to merge it",
			files: []*ltx.FileInfo{
				fi(9, 1, 20, ago(time.Minute)),
				fi(1, 2, 10, ago(2*time.Hour)),
				fi(1, 11, 20, ago(40*time.Minute)),
				fi(2, 2, 10, ago(30*time.Minute)),
			},
			rules: rules,
			want:  []string{"1/2-a", "2/2-a"},
		},
		{
			name: "level 0: covered by level 1 and older than the retention, newest kept",
			files: []*ltx.FileInfo{
				fi(9, 1, 1, ago(time.Minute)),
				fi(0, 1, 1, ago(20*time.Minute)),
				fi(0, 2, 2, ago(10*time.Minute)),
				fi(0, 3, 3, ago(4*time.Minute)),
				fi(0, 4, 4, ago(10*time.Minute)), // clock skew: old but not covered
				fi(1, 2, 3, ago(4*time.Minute)),
			},
			rules: rules,
			want:  []string{"0/1-1", "0/2-2"},
			// 3-3 is covered but young; 4-4 is not covered.
			census: L0Census{NotCompacted: 1, TooRecent: 1},
		},
		{
			name: "no levels: a snapshot covers level 0",
			files: []*ltx.FileInfo{
				fi(9, 1, 2, ago(time.Minute)),
				fi(0, 1, 1, ago(20*time.Minute)),
				fi(0, 2, 2, ago(20*time.Minute)),
				fi(0, 3, 3, ago(20*time.Minute)),
			},
			rules: retentionRules{snapshotRetention: time.Hour, l0Retention: time.Minute},
			// 1-1, the first sync's full file, counts as a snapshot younger
			// than the retention (no level-9 snapshot at TXID 1).
			want:   []string{"0/2-2"},
			census: L0Census{NotCompacted: 1, TooRecent: 1}, // 3-3: past the snapshot
		},
		{
			name: "the first sync's level-0 file is the base until a snapshot",
			files: []*ltx.FileInfo{
				fi(0, 1, 1, ago(48*time.Hour)),
				fi(0, 2, 2, ago(20*time.Minute)),
				fi(0, 3, 3, ago(20*time.Minute)),
				fi(1, 2, 3, ago(20*time.Minute)),
				fi(2, 2, 3, ago(20*time.Minute)),
			},
			rules:  rules,
			want:   []string{"0/2-2"},
			census: L0Census{TooRecent: 2}, // 1-1 the base, 3-3 the newest
		},
		{
			name: "the level-0 base goes as an old snapshot once a newer one exists",
			files: []*ltx.FileInfo{
				fi(0, 1, 1, ago(48*time.Hour)),
				fi(0, 4, 4, ago(20*time.Minute)),
				fi(1, 2, 4, ago(20*time.Minute)),
				fi(2, 2, 4, ago(20*time.Minute)),
				fi(9, 1, 4, ago(20*time.Minute)),
			},
			rules:  rules,
			want:   []string{"0/1-1", "1/2-4", "2/2-4"},
			census: L0Census{TooRecent: 1},
		},
		{
			name: "the level-0 base younger than the snapshot retention keeps history from TXID 1",
			files: []*ltx.FileInfo{
				fi(0, 1, 1, ago(30*time.Minute)),
				fi(0, 4, 4, ago(20*time.Minute)),
				fi(1, 2, 4, ago(20*time.Minute)),
				fi(2, 2, 4, ago(20*time.Minute)),
				fi(9, 1, 4, ago(20*time.Minute)),
			},
			rules:  rules,
			census: L0Census{TooRecent: 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cands, census := retentionCandidates(tc.files, now, tc.rules)
			if census != tc.census {
				t.Errorf("level-0 census %+v, want %+v", census, tc.census)
			}
			for _, f := range cands {
				got = append(got, fmt.Sprintf("%d/%x-%x", f.Level, uint64(f.MinTXID), uint64(f.MaxTXID)))
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

// TestRetentionGraceAndDisabled: nothing is deleted before a file has been
// deletable for the grace period, and nothing at all when disabled.
func TestRetentionGraceAndDisabled(t *testing.T) {
	e := newEnv(t)
	opts := e.opts()
	opts.Levels = []time.Duration{time.Hour}
	opts.L0Retention = time.Millisecond
	opts.RetentionGrace = 200 * time.Millisecond
	d := e.open(opts)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		e.insertSync(d, 10, 500)
	}
	if _, err := d.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	off := opts
	off.RetentionDisabled = true
	dOff := New(e.path, e.client, off)
	if del, err := dOff.EnforceRetention(ctx); err != nil || len(del) != 0 {
		t.Fatalf("disabled retention deleted %v, %v", del, err)
	}
	waitFor(t, 5*time.Second, "files older than the L0 retention", func() bool {
		return time.Since(e.files(0)[2].CreatedAt) > opts.L0Retention
	})
	start := time.Now()
	del, err := d.EnforceRetention(ctx)
	if err != nil || len(del) != 0 {
		t.Fatalf("first retention pass deleted %v, %v: the grace period was not kept", del, err)
	}
	var deleted []*ltx.FileInfo
	waitFor(t, 5*time.Second, "retention after the grace period", func() bool {
		del, err := d.EnforceRetention(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deleted = append(deleted, del...)
		return len(deleted) > 0
	})
	if time.Since(start) < opts.RetentionGrace {
		t.Fatalf("deleted after %v, grace %v", time.Since(start), opts.RetentionGrace)
	}
	// TXIDs 2..3 of level 0 go (level 1 covers them); 1 stays, the first
	// sync's full file and the only base (no level-9 snapshot yet), and so
	// does the newest level-0 file, for resume.
	l0 := e.files(remote.L0)
	if len(deleted) != 2 || len(l0) != 2 || l0[0].MaxTXID != 1 || l0[1].MaxTXID != 4 {
		t.Fatalf("deleted %d files, level 0 left %v", len(deleted), l0)
	}
	e.checkReplicaPlan()
}

// checkReplicaPlan asserts that the latest plan restores the application's
// database.
func (e *env) checkReplicaPlan() {
	e.t.Helper()
	got, plan, err := planRestore(e.t, e.client, 0, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	if want := e.image(); string(got) != string(want) {
		e.t.Fatalf("restore at TXID %d differs: %s", plan.TXID, diffPages(got, want, 4096))
	}
}
