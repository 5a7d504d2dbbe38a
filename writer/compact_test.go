package writer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
)

// planRestore rebuilds the database image at a TXID or time from the files
// the shared plan (package index) picks, across all levels. A file deleted
// between listing and reading makes it plan once more, as restores do.
func planRestore(t *testing.T, c remote.Client, txid ltx.TXID, ts time.Time) ([]byte, *index.Plan, error) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		img, plan, err := planRestoreOnce(c, txid, ts)
		if errors.Is(err, os.ErrNotExist) && attempt == 0 {
			continue
		}
		return img, plan, err
	}
}

func planRestoreOnce(c remote.Client, txid ltx.TXID, ts time.Time) ([]byte, *index.Plan, error) {
	ctx := context.Background()
	plan, err := index.PlanAt(ctx, c, txid, ts)
	if err != nil {
		return nil, nil, err
	}
	var img []byte
	for _, info := range plan.Files {
		rc, err := c.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
		if err != nil {
			return nil, plan, err
		}
		dec := ltx.NewDecoder(rc)
		if err := dec.DecodeHeader(); err != nil {
			rc.Close()
			return nil, plan, err
		}
		hdr := dec.Header()
		ps := int(hdr.PageSize)
		size := int(hdr.Commit) * ps
		if len(img) < size {
			img = append(img, make([]byte, size-len(img))...)
		}
		img = img[:size]
		buf := make([]byte, ps)
		for {
			var ph ltx.PageHeader
			if err := dec.DecodePage(&ph, buf); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				rc.Close()
				return nil, plan, err
			}
			if int(ph.Pgno)*ps <= len(img) {
				copy(img[(int(ph.Pgno)-1)*ps:], buf)
			}
		}
		err = dec.Close()
		rc.Close()
		if err != nil {
			return nil, plan, err
		}
	}
	return img, plan, nil
}

func digest(b []byte) [32]byte { return sha256.Sum256(b) }

func TestCompactLevels(t *testing.T) {
	e := newEnv(t)
	e.insert(200, 1000)
	opts := e.opts()
	opts.Levels = []time.Duration{time.Hour, time.Hour}
	d := e.open(opts)
	ctx := context.Background()
	images := map[ltx.TXID][]byte{}
	step := func() {
		e.sync(d)
		images[d.Status().TXID] = e.image()
	}
	step() // TXID 1: a full snapshot, at level 0 only
	for i := 0; i < 5; i++ {
		e.insert(20, 1000)
		step()
	}
	out, err := d.Compact(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Level 1 starts after the first sync's full file at TXID 1: no
	// database-sized copy of it.
	if len(out) != 1 || out[0].MinTXID != 2 || out[0].MaxTXID != 6 {
		t.Fatalf("first level-1 compaction wrote %v, want 2-6", out)
	}
	f := readLTX(t, e.client, 1, 2, 6)
	newest := readLTX(t, e.client, 0, 6, 6)
	if f.hdr.Flags != ltx.HeaderFlagNoChecksum || f.hdr.WALOffset != 0 || f.hdr.WALSize != 0 || f.hdr.WALSalt1 != 0 {
		t.Errorf("compaction header %+v: want NoChecksum and no WAL fields", f.hdr)
	}
	if f.hdr.Timestamp != newest.hdr.Timestamp || !out[0].CreatedAt.Equal(time.UnixMilli(newest.hdr.Timestamp)) {
		t.Errorf("compaction timestamp %d (created %v), newest input's %d", f.hdr.Timestamp, out[0].CreatedAt, newest.hdr.Timestamp)
	}
	if f.hdr.Commit != newest.hdr.Commit {
		t.Errorf("compaction commit %d, newest input's %d", f.hdr.Commit, newest.hdr.Commit)
	}
	// Nothing new: nothing written.
	if out, err := d.Compact(ctx, 1); err != nil || len(out) != 0 {
		t.Fatalf("idle compaction wrote %v, %v", out, err)
	}

	// Shrink the database so that the newest page of some pages is past
	// the final commit: they must be dropped.
	e.exec(`DELETE FROM t WHERE id > 50`)
	e.exec(`VACUUM`)
	step()
	e.insert(10, 500)
	step()
	out, err = d.Compact(ctx, 1)
	if err != nil || len(out) != 1 || out[0].MinTXID != 7 || out[0].MaxTXID != 8 {
		t.Fatalf("second level-1 compaction wrote %v, %v; want 7-8", out, err)
	}
	f = readLTX(t, e.client, 1, 7, 8)
	for _, p := range f.pgnos {
		if p > f.hdr.Commit {
			t.Errorf("page %d past commit %d kept", p, f.hdr.Commit)
		}
	}
	out, err = d.Compact(ctx, 2)
	if err != nil || len(out) != 1 || out[0].MinTXID != 2 || out[0].MaxTXID != 8 {
		t.Fatalf("level-2 compaction wrote %v, %v; want 2-8", out, err)
	}

	// Every TXID restores exactly, and the latest one from the fewest files
	// (the first sync's file plus the level-2 file).
	for txid, want := range images {
		got, plan, err := planRestore(t, e.client, txid, time.Time{})
		if err != nil {
			t.Fatalf("restore TXID %d: %v", txid, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("restore TXID %d differs: %s", txid, diffPages(got, want, 4096))
		}
		if txid == 8 && len(plan.Files) != 2 {
			t.Errorf("plan for TXID 8 has %d files, want 2 (L0 1-1 + L2)", len(plan.Files))
		}
	}
	// With the level-0 files but the base gone, the compacted levels still
	// restore the boundaries.
	if err := e.client.DeleteLTXFiles(ctx, e.files(0)[1:]); err != nil {
		t.Fatal(err)
	}
	for _, txid := range []ltx.TXID{1, 6, 8} {
		got, _, err := planRestore(t, e.client, txid, time.Time{})
		if err != nil || !bytes.Equal(got, images[txid]) {
			t.Fatalf("restore TXID %d from compactions: err %v, equal %v", txid, err, bytes.Equal(got, images[txid]))
		}
	}
	if _, _, err := planRestore(t, e.client, 4, time.Time{}); !errors.Is(err, index.ErrNotAvailable) {
		t.Fatalf("restore of a TXID no file ends at: %v, want ErrNotAvailable", err)
	}
}

func TestCompactManyInputsInOneTick(t *testing.T) {
	e := newEnv(t)
	opts := e.opts()
	opts.Levels = []time.Duration{time.Hour}
	d := e.open(opts)
	e.insertSync(d, 5, 100)
	n := maxCompactInputs*2 + 5
	for i := 0; i < n; i++ {
		e.insertSync(d, 1, 100)
	}
	want := e.image()
	out, err := d.Compact(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].MinTXID != 2 || out[2].MaxTXID != ltx.TXID(n+1) {
		t.Fatalf("compaction of %d files wrote %d files %v", n, len(out), out)
	}
	for i := 1; i < len(out); i++ {
		if out[i].MinTXID != out[i-1].MaxTXID+1 {
			t.Fatalf("outputs not contiguous: %v", out)
		}
	}
	// Without the level-0 files but the first (the base: compaction starts
	// after it), the compactions restore the latest state.
	if err := e.client.DeleteLTXFiles(context.Background(), e.files(0)[1:]); err != nil {
		t.Fatal(err)
	}
	got, _, err := planRestore(t, e.client, 0, time.Time{})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("restore after catch-up: %v", err)
	}
}

func TestPendingInputs(t *testing.T) {
	fi := func(lo, hi ltx.TXID) *ltx.FileInfo { return &ltx.FileInfo{MinTXID: lo, MaxTXID: hi} }
	for _, tc := range []struct {
		name   string
		src    []*ltx.FileInfo
		cursor ltx.TXID
		want   string
	}{
		{"empty", nil, 0, ""},
		{"all", []*ltx.FileInfo{fi(1, 1), fi(2, 2), fi(3, 3)}, 0, "1-1 2-2 3-3"},
		{"after cursor", []*ltx.FileInfo{fi(1, 1), fi(2, 2), fi(3, 3)}, 1, "2-2 3-3"},
		{"covered", []*ltx.FileInfo{fi(1, 1), fi(2, 2)}, 2, ""},
		{"gap starts a new run", []*ltx.FileInfo{fi(3, 4), fi(5, 6), fi(8, 9)}, 2, "3-4 5-6 | 8-9"},
		{"straddling first", []*ltx.FileInfo{fi(1, 4), fi(5, 6)}, 2, "1-4 5-6"},
		{"overlap continues a run", []*ltx.FileInfo{fi(3, 6), fi(5, 8)}, 2, "3-6 5-8"},
		{"contained file skipped", []*ltx.FileInfo{fi(3, 8), fi(4, 5), fi(9, 9)}, 2, "3-8 9-9"},
		{"unsorted", []*ltx.FileInfo{fi(5, 6), fi(3, 4)}, 2, "3-4 5-6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var parts []string
			for _, run := range pendingInputs(tc.src, tc.cursor) {
				var names []string
				for _, f := range run {
					names = append(names, fmt.Sprintf("%d-%d", f.MinTXID, f.MaxTXID))
				}
				parts = append(parts, strings.Join(names, " "))
			}
			if got := strings.Join(parts, " | "); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCompactFixture continues a Litestream replica: level 3 merges its
// level-2 files, and the database restores identically from it.
func TestCompactFixture(t *testing.T) {
	// A copy: compaction writes level 3 into it.
	dir := testsupport.FixtureCopy(t)
	c := file.New(dir)
	want, _, err := planRestore(t, c, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := compactLevel(context.Background(), c, 3, filepath.Join(dir, "spill"), discardLog{})
	if err != nil {
		t.Fatal(err)
	}
	// Level 3 is empty and nothing above it but the snapshot at TXID 1:
	// it starts at 2, merging level 2's 2-9 and a-f.
	if len(out) != 1 || out[0].MinTXID != 2 || out[0].MaxTXID != 15 {
		t.Fatalf("level-3 compaction wrote %v, want 2-15", out)
	}
	for level := 0; level <= 2; level++ {
		files, _ := c.LTXFiles(context.Background(), level, 2)
		if err := c.DeleteLTXFiles(context.Background(), files); err != nil {
			t.Fatal(err)
		}
	}
	got, plan, err := planRestore(t, c, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || len(plan.Files) != 2 {
		t.Fatalf("restore from L9 + L3: equal %v, %d files", bytes.Equal(got, want), len(plan.Files))
	}
}

type discardLog struct{}

func (discardLog) Warn(string, ...any) {}
func (discardLog) Info(string, ...any) {}

// TestCompactGapDoesNotStall: a hole in level 0 splits the merge instead of
// stopping the level at it.
func TestCompactGapDoesNotStall(t *testing.T) {
	e := newEnv(t)
	opts := e.opts()
	opts.Levels = []time.Duration{time.Hour}
	d := e.open(opts)
	for i := 0; i < 6; i++ {
		e.insertSync(d, 3, 200)
	}
	ctx := context.Background()
	if err := e.client.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 4, MaxTXID: 4}}); err != nil {
		t.Fatal(err)
	}
	out, err := d.Compact(ctx, 1)
	if err != nil || len(out) != 2 || out[0].MaxTXID != 3 || out[1].MinTXID != 5 || out[1].MaxTXID != 6 {
		t.Fatalf("compaction across a gap wrote %v, %v; want 2-3 and 5-6", out, err)
	}
	e.insertSync(d, 3, 200)
	out, err = d.Compact(ctx, 1)
	if err != nil || len(out) != 1 || out[0].MinTXID != 7 {
		t.Fatalf("next compaction wrote %v, %v; want 7-7", out, err)
	}
}
