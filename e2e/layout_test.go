package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/internal/testsupport"
)

// The rules a replica follows, checked identically on the fixture written by
// Litestream v0.5.18 and on replicas written by this project: if the fixture
// ever stops passing, the rule is wrong, not the fixture.

// walFrameHeaderSize and walHeaderSize are SQLite's WAL layout; the WAL
// fields of a level-0 header describe a whole number of frames.
const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

// ltxFacts is what checkLTXFile learned about one file.
type ltxFacts struct {
	hdr   ltx.Header
	pages []uint32 // in file order
	flags uint16   // page header flags: the page encoding
	// noWAL: a level-0 full snapshot without WAL fields (see checkLTXFile).
	noWAL bool
}

// isFullSnapshot reports whether pages are exactly 1..commit without the
// lock page.
func isFullSnapshot(pages []uint32, commit, lock uint32) bool {
	want := uint32(1)
	for _, p := range pages {
		if want == lock {
			want++
		}
		if p != want {
			return false
		}
		want++
	}
	if want == lock {
		want++
	}
	return want == commit+1
}

// checkLTXFile decodes one LTX file completely (which verifies the CRC64
// file checksum and that the page index names exactly the decoded pages) and
// checks the encoding rules:
//   - header flags exactly NoChecksum, zero pre- and post-apply checksums,
//     MinTXID/MaxTXID equal to the file name's;
//   - level 0: MinTXID == MaxTXID, WAL offset/size/salts set and describing
//     whole WAL frames (except a full snapshot of an empty WAL: noWAL);
//     levels 1-8: WAL fields zero; level 9: MinTXID 1;
//   - every page frame of a file uses one encoding: the LZ4 block encoding
//     (PageHeaderFlagSize; Litestream v0.5 writes it) or the LZ4 frame
//     encoding with a content checksum per page (flags 0; this project
//     writes it, internal/ltxframe, and Litestream v0.5 reads it); pages
//     strictly ascending, never the lock page, none above Commit;
//     a snapshot (MinTXID 1) holds every page 1..Commit except the lock page;
//   - the page index (found through the 8-byte size before the 16-byte
//     trailer) points at each page's frame, whose size matches (a frame-
//     encoded page's frame decodes alone and its checksum matches).
func checkLTXFile(path string, level int, minTXID, maxTXID ltx.TXID) (*ltxFacts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}

	dec := ltx.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	if err := dec.DecodeHeader(); err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	hdr := dec.Header()
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(hdr.Flags == ltx.HeaderFlagNoChecksum, "header flags %d, want NoChecksum (%d)", hdr.Flags, ltx.HeaderFlagNoChecksum)
	check(hdr.PreApplyChecksum == 0, "pre-apply checksum %s, want zero", hdr.PreApplyChecksum)
	check(hdr.MinTXID == minTXID && hdr.MaxTXID == maxTXID, "header TXIDs %s-%s, file name %s-%s", hdr.MinTXID, hdr.MaxTXID, minTXID, maxTXID)
	check(hdr.Timestamp > 0, "header timestamp %d", hdr.Timestamp)
	frame := int64(hdr.PageSize) + walFrameHeaderSize
	// No WAL range: all zero, or "at the WAL header, no frames" (offset 32,
	// size 0, no salts), which our snapshots of an empty WAL record since
	// Litestream v0.5 cannot continue a replica from offset 0.
	walSet := hdr.WALSalt1 != 0 || hdr.WALSalt2 != 0 || hdr.WALSize != 0 || (hdr.WALOffset != 0 && hdr.WALOffset != walHeaderSize)
	if walSet {
		check(hdr.WALOffset >= walHeaderSize && (hdr.WALOffset-walHeaderSize)%frame == 0 && hdr.WALSize > 0 && hdr.WALSize%frame == 0,
			"WAL offset %d size %d do not describe whole frames of %d bytes", hdr.WALOffset, hdr.WALSize, frame)
	}
	switch {
	case level == 0:
		check(minTXID == maxTXID, "level-0 file spans TXIDs %s-%s", minTXID, maxTXID)
		// WAL fields are checked after the pages: one exception is allowed.
	case level < 9:
		check(!walSet, "level-%d compaction has WAL fields set (offset %d size %d salts %08x/%08x)", level, hdr.WALOffset, hdr.WALSize, hdr.WALSalt1, hdr.WALSalt2)
	case level == 9:
		check(minTXID == 1, "level-9 snapshot starts at TXID %s, want 1", minTXID)
	default:
		check(false, "level %d out of range", level)
	}

	lock := ltx.LockPgno(hdr.PageSize)
	facts := &ltxFacts{hdr: hdr}
	var ph ltx.PageHeader
	buf := make([]byte, hdr.PageSize)
	for {
		if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, errors.Join(append(errs, fmt.Errorf("decode page after %d pages: %w", len(facts.pages), err))...)
		}
		if len(facts.pages) == 0 {
			facts.flags = ph.Flags
		}
		check(ph.Flags == facts.flags && (ph.Flags == ltx.PageHeaderFlagSize || ph.Flags == 0),
			"page %d frame flags %d, want LZ4 block (%d) or LZ4 frame (0) throughout the file (first page: %d)", ph.Pgno, ph.Flags, ltx.PageHeaderFlagSize, facts.flags)
		check(ph.Pgno != lock, "lock page %d is in the file", ph.Pgno)
		check(ph.Pgno <= hdr.Commit, "page %d above commit %d", ph.Pgno, hdr.Commit)
		if n := len(facts.pages); n > 0 {
			check(ph.Pgno > facts.pages[n-1], "page %d after page %d: not ascending", ph.Pgno, facts.pages[n-1])
		}
		facts.pages = append(facts.pages, ph.Pgno)
	}
	if level == 0 && !(walSet && (hdr.WALSalt1 != 0 || hdr.WALSalt2 != 0)) {
		// Litestream's level-0 files always carry the WAL range they came
		// from (it writes to the database before its first sync). Ours
		// may lack it in one case only: a full snapshot taken while the
		// WAL was empty, which covers no WAL range. Callers see it as
		// facts.noWAL.
		facts.noWAL = !walSet && isFullSnapshot(facts.pages, hdr.Commit, lock)
		check(facts.noWAL, "level-0 file has no WAL offset/size/salts and is not a full snapshot")
	}
	if err := dec.Close(); err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("close decoder (trailer, checksum, page index): %w", err))...)
	}
	tr := dec.Trailer()
	check(tr.PostApplyChecksum == 0, "post-apply checksum %s, want zero", tr.PostApplyChecksum)
	check(tr.FileChecksum&ltx.ChecksumFlag != 0, "file checksum %s lacks the checksum flag", tr.FileChecksum)
	if hdr.IsSnapshot() {
		check(isFullSnapshot(facts.pages, hdr.Commit, lock), "snapshot (MinTXID 1) does not hold exactly pages 1..%d without the lock page (%d pages, first %v)",
			hdr.Commit, len(facts.pages), facts.pages[:min(5, len(facts.pages))])
	}

	// The page index, read the way a range reader reads it: from the tail
	// (records, end marker, then the 8-byte size field).
	var sz [8]byte
	if _, err := f.ReadAt(sz[:], fi.Size()-ltx.TrailerSize-8); err != nil {
		return nil, fmt.Errorf("read page index size: %w", err)
	}
	idxSize := int64(binary.BigEndian.Uint64(sz[:]))
	idxOff := fi.Size() - ltx.TrailerSize - 8 - idxSize
	if idxSize <= 0 || idxOff < ltx.HeaderSize {
		return nil, errors.Join(append(errs, fmt.Errorf("page index size %d out of range for a %d-byte file", idxSize, fi.Size()))...)
	}
	idx, err := ltx.DecodePageIndex(bufio.NewReader(io.NewSectionReader(f, idxOff, idxSize+8)), level, minTXID, maxTXID)
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("decode page index: %w", err))...)
	}
	check(len(idx) == len(facts.pages), "page index has %d entries, file %d pages", len(idx), len(facts.pages))
	for _, pgno := range facts.pages {
		e, ok := idx[pgno]
		if !ok {
			check(false, "page %d missing from the page index", pgno)
			continue
		}
		var fh [ltx.PageHeaderSize + 4]byte
		if _, err := f.ReadAt(fh[:], e.Offset); err != nil {
			check(false, "page %d: read frame at %d: %v", pgno, e.Offset, err)
			continue
		}
		var got ltx.PageHeader
		if err := got.UnmarshalBinary(fh[:ltx.PageHeaderSize]); err != nil {
			check(false, "page %d: frame header at %d: %v", pgno, e.Offset, err)
			continue
		}
		if got.Flags == 0 {
			fr := make([]byte, e.Size)
			if _, err := f.ReadAt(fr, e.Offset); err != nil {
				check(false, "page %d: read frame at %d: %v", pgno, e.Offset, err)
				continue
			}
			err := ltxframe.Decode(make([]byte, hdr.PageSize), fr[ltx.PageHeaderSize:])
			check(got.Pgno == pgno && err == nil, "page %d: index entry (offset %d, size %d) points at frame {pgno %d flags 0}: %v", pgno, e.Offset, e.Size, got.Pgno, err)
			continue
		}
		blk := int64(binary.BigEndian.Uint32(fh[ltx.PageHeaderSize:]))
		check(got.Pgno == pgno && got.Flags == ltx.PageHeaderFlagSize && e.Size == int64(len(fh))+blk,
			"page %d: index entry (offset %d, size %d) points at frame {pgno %d flags %d block %d}", pgno, e.Offset, e.Size, got.Pgno, got.Flags, blk)
	}
	return facts, errors.Join(errs...)
}

// replicaFacts summarizes a replica that passed checkReplicaLayout.
type replicaFacts struct {
	levels   []int // levels present, ascending
	pageSize uint32
	l0       []ltx.TXID // level-0 TXIDs, ascending
	files    int
	noWAL    []string // level-0 snapshots without WAL fields
}

// checkReplicaLayout checks the key layout of a file replica and every file
// in it: <root>/ltx/<level in decimal>/<%016x-%016x>.ltx and nothing else
// (hidden files excepted), the encoding rules of checkLTXFile, one page
// size, level 0 holding consecutive TXIDs from its first file, a full copy
// at TXID 1 (a level-9 snapshot, or the first sync's level-0 file before the
// first snapshot), and every level's files in non-overlapping ranges.
func checkReplicaLayout(t *testing.T, root string) *replicaFacts {
	t.Helper()
	var unexpected []string
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		parts := strings.Split(rel, string(filepath.Separator))
		ok := false
		switch len(parts) {
		case 1:
			ok = parts[0] == "ltx" && d.IsDir()
		case 2:
			n, err := strconv.Atoi(parts[1])
			ok = err == nil && d.IsDir() && n >= 0 && n <= 9 && strconv.Itoa(n) == parts[1]
		case 3:
			ok = !d.IsDir() && ltxName.MatchString(parts[2])
		}
		if !ok {
			unexpected = append(unexpected, rel)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("walk replica %s: %v", root, err)
	}
	if len(unexpected) > 0 {
		t.Errorf("replica %s: entries outside the layout <root>/ltx/<level>/<min>-<max>.ltx: %q", root, unexpected)
	}

	files, err := listReplica(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("replica %s has no LTX files", root)
	}
	facts := &replicaFacts{files: len(files)}
	byLevel := map[int][]replicaFile{}
	for _, f := range files {
		ff, err := checkLTXFile(f.Path, f.Level, f.Min, f.Max)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if ff.noWAL {
			facts.noWAL = append(facts.noWAL, f.Path)
		}
		if facts.pageSize == 0 {
			facts.pageSize = ff.hdr.PageSize
		} else if ff.hdr.PageSize != facts.pageSize {
			t.Errorf("%s: page size %d, other files %d", f.Path, ff.hdr.PageSize, facts.pageSize)
		}
		byLevel[f.Level] = append(byLevel[f.Level], f)
	}
	for level, fs := range byLevel {
		facts.levels = append(facts.levels, level)
		for i := 1; i < len(fs); i++ {
			if fs[i].Min <= fs[i-1].Max {
				t.Errorf("level %d: %s overlaps %s", level, filepath.Base(fs[i].Path), filepath.Base(fs[i-1].Path))
			}
		}
	}
	slices.Sort(facts.levels)
	for i, f := range byLevel[0] {
		facts.l0 = append(facts.l0, f.Min)
		if i > 0 && f.Min != byLevel[0][i-1].Max+1 {
			t.Errorf("level 0: %s does not follow TXID %s", filepath.Base(f.Path), byLevel[0][i-1].Max)
		}
	}
	l9, l0 := byLevel[9], byLevel[0]
	if (len(l9) == 0 || l9[0].Min != 1) && (len(l0) == 0 || l0[0].Min != 1) {
		t.Errorf("replica %s: no level-9 snapshot and no level-0 file starting at TXID 1", root)
	}
	return facts
}

// treeState records names, sizes and modification times under dir, to prove
// a read-only input was left untouched.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %d %s\n", p, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestFixtureLayout checks the layout rules on the replica written by
// Litestream v0.5.18, which keeps the rules honest.
func TestFixtureLayout(t *testing.T) {
	fix := fixtureDir(t)
	facts := checkReplicaLayout(t, filepath.Join(fix, "replica"))
	if !slices.Equal(facts.levels, []int{0, 1, 2, 9}) || facts.pageSize != 4096 || len(facts.l0) != 15 {
		t.Errorf("fixture facts: levels %v page size %d level-0 files %d; README says levels 0,1,2,9, 4096, 15", facts.levels, facts.pageSize, len(facts.l0))
	}
}

// TestFixtureRestore restores the Litestream v0.5.18 replica through the
// command line at the TXIDs its README documents, by URL and by plain path.
func TestFixtureRestore(t *testing.T) {
	fix := fixtureDir(t)
	replica := filepath.Join(fix, "replica")
	before := treeState(t, fix)

	type counts struct {
		users                  int64
		usersID, usersNameLen  float64
		events                 int64
		evID, evUser, evPayLen float64
		evMaxPrefix            string
	}
	tests := []struct {
		txid string // as given on the command line
		want counts
	}{
		{"1", counts{}},
		{"0000000000000005", counts{2000, 2001000, 15796, 1069, 662200, 2690966, 213800, "FFB33BF0C0A7EF89"}},
		{"9", counts{4000, 8002000, 32561, 1931, 2485056, 4912375, 386200, "FFE0B5640D7B1F57"}},
		{"f", counts{6000, 18003000, 49796, 2585, 5218136, 6556214, 517000, "FFCA921B602616FE"}},
		{"", counts{6000, 18003000, 49796, 2585, 5218136, 6556214, 517000, "FFCA921B602616FE"}},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		for _, form := range []string{"url", "path"} {
			name := fmt.Sprintf("txid=%s/%s", cmpOr(tt.txid, "latest"), form)
			t.Run(name, func(t *testing.T) {
				out := filepath.Join(dir, fmt.Sprintf("r%d-%s.db", i, form))
				args := []string{"restore", "-integrity-check", "full", "-o", out}
				if tt.txid != "" {
					args = append(args, "-txid", tt.txid)
				}
				src := replica
				if form == "url" {
					src = fileURL(replica)
				}
				mustCLI(t, append(args, src)...)
				integrityCheck(t, out)
				db := openReadOnly(t, out)
				var got counts
				if err := db.QueryRow(`SELECT count(*), total(id), total(length(name)) FROM users`).Scan(&got.users, &got.usersID, &got.usersNameLen); err != nil {
					t.Fatal(err)
				}
				if err := db.QueryRow(`SELECT count(*), total(id), total(user_id), total(length(payload)), coalesce(hex(substr(max(payload),1,8)), '') FROM events`).
					Scan(&got.events, &got.evID, &got.evUser, &got.evPayLen, &got.evMaxPrefix); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("content at txid %s:\n got %+v\nwant %+v", tt.txid, got, tt.want)
				}
				if tt.txid == "" || tt.txid == "f" {
					const wantSHA = "14fa823941da3d28611583249fa3fc83fc60876a3e3753a1767652092a3c94bf"
					if sum := testsupport.FileSHA256(t, out); sum != wantSHA {
						t.Errorf("sha256 of the latest restore %s, want %s (the fixture's source.db)", sum, wantSHA)
					}
				}
			})
		}
	}
	if after := treeState(t, fix); after != before {
		t.Errorf("the fixture directory changed during restores:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestReplicaLayoutMatchesFixture replicates a database shaped like the
// fixture's (page size 4096, users and events, a WAL restart in the middle)
// with the real daemon and checks that the replica follows the same layout
// and encoding rules as the one Litestream v0.5.18 wrote.
func TestReplicaLayoutMatchesFixture(t *testing.T) {
	fixFacts := checkReplicaLayout(t, filepath.Join(fixtureDir(t), "replica"))

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath, "PRAGMA page_size=4096")
	mustExec(t, db, `CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
	mustExec(t, db, `CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, payload BLOB)`)
	mustExec(t, db, `CREATE INDEX events_user ON events(user_id)`)

	d := startDaemon(t, daemonConfig(t, dbPath, replica))
	waitTXID(t, d, replica, 1, 30*time.Second)
	for round := 0; round < 6; round++ {
		start := replicaMaxTXID(t, replica)
		mustExec(t, db, seriesSQL+`INSERT INTO users(name) SELECT 'user-' || value FROM series`, 500)
		mustExec(t, db, seriesSQL+`INSERT INTO events(user_id, payload) SELECT abs(random()) % 500, randomblob(200) FROM series`, 300)
		if round == 3 {
			// A new WAL generation: the next level-0 file starts at the
			// log's first frame with new salts.
			checkpoint(t, db)
			mustExec(t, db, `UPDATE users SET name = name || '!' WHERE id % 7 = 0`)
		}
		waitTXID(t, d, replica, start+1, 30*time.Second)
	}
	d.stop()

	ours := checkReplicaLayout(t, replica)
	if len(ours.noWAL)+len(fixFacts.noWAL) > 0 {
		t.Errorf("level-0 files without WAL fields: %q", append(ours.noWAL, fixFacts.noWAL...))
	}
	if ours.pageSize != fixFacts.pageSize {
		t.Errorf("page size %d, fixture %d", ours.pageSize, fixFacts.pageSize)
	}
	// Level 9 is the fixture's (Litestream snapshots at once); ours is the
	// first sync's level-0 file until the snapshot schedule (24 h here)
	// writes the first level-9 snapshot.
	if !slices.Contains(ours.levels, 0) || !slices.Contains(fixFacts.levels, 9) {
		t.Errorf("our replica has levels %v, want level 0; the fixture %v, want level 9", ours.levels, fixFacts.levels)
	}
	if len(ours.l0) == 0 || ours.l0[0] != 1 || fixFacts.l0[0] != 1 {
		t.Errorf("level 0 starts at TXID %v (ours) and %v (fixture); want 1 for both", ours.l0[:min(1, len(ours.l0))], fixFacts.l0[:1])
	}
	t.Logf("our replica: levels %v, %d files, level-0 TXIDs 1..%s; fixture: levels %v, %d files",
		ours.levels, ours.files, ours.l0[len(ours.l0)-1], fixFacts.levels, fixFacts.files)

	// The listing command reads it, and it restores to the source.
	if res := mustCLI(t, "ltx", fileURL(replica)); !strings.Contains(res.stdout, "0000000000000001") {
		t.Errorf("ltx listing lacks TXID 1:\n%s", res.stdout)
	}
	out := filepath.Join(dir, "restored.db")
	restore(t, replica, 0, out)
	checkpoint(t, db)
	sameFiles(t, dbPath, out, 4096)
}

// writeLTX encodes an LTX file with the given header and pages (each page
// filled with its page number) to path.
func writeLTX(t *testing.T, path string, hdr ltx.Header, pages []uint32) {
	t.Helper()
	spec := ltx.FileSpec{Header: hdr}
	for _, p := range pages {
		buf := make([]byte, hdr.PageSize)
		binary.BigEndian.PutUint32(buf, p)
		spec.Pages = append(spec.Pages, ltx.PageSpec{Header: ltx.PageHeader{Pgno: p}, Data: buf})
	}
	if hdr.Flags&ltx.HeaderFlagNoChecksum == 0 {
		spec.Trailer.PostApplyChecksum = ltx.ChecksumFlag | 1
	}
	if err := os.WriteFile(path, testsupport.LTX(t, spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckLTXFileRejects keeps checkLTXFile honest: files that break one
// rule each must be rejected with that rule named.
func TestCheckLTXFileRejects(t *testing.T) {
	l0 := func(txid ltx.TXID) ltx.Header {
		return ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: 4096, Commit: 10, MinTXID: txid, MaxTXID: txid,
			Timestamp: 1, WALOffset: 32, WALSize: 2 * (4096 + 24), WALSalt1: 7, WALSalt2: 8}
	}
	noWAL := func(h ltx.Header) ltx.Header { h.WALOffset, h.WALSize, h.WALSalt1, h.WALSalt2 = 0, 0, 0, 0; return h }
	tests := []struct {
		name     string
		level    int
		hdr      ltx.Header
		pages    []uint32
		nameTXID ltx.TXID // TXIDs in the file name; 0: the header's
		mutate   func([]byte)
		want     string // "" means accepted
	}{
		{name: "valid level 0", hdr: l0(5), pages: []uint32{2, 7}},
		{name: "valid level-0 snapshot", hdr: l0(1), pages: []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "level-0 snapshot of an empty WAL", hdr: noWAL(l0(3)), pages: []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "checksums kept", hdr: func() ltx.Header { h := l0(1); h.Flags = 0; return h }(), pages: []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, want: "header flags"},
		{name: "level 0 without WAL fields", hdr: noWAL(l0(5)), pages: []uint32{2, 7}, want: "no WAL offset"},
		{name: "WAL range not whole frames", hdr: func() ltx.Header { h := l0(5); h.WALSize = 100; return h }(), pages: []uint32{2}, want: "whole frames"},
		{name: "compaction with WAL fields", level: 1, hdr: l0(5), pages: []uint32{2}, want: "compaction has WAL fields"},
		{name: "level 9 not at TXID 1", level: 9, hdr: noWAL(l0(4)), pages: []uint32{2}, want: "level-9 snapshot starts"},
		{name: "name differs from header", hdr: l0(5), pages: []uint32{2}, nameTXID: 6, want: "header TXIDs"},
		{name: "flipped byte", hdr: l0(5), pages: []uint32{2, 7}, mutate: func(b []byte) { b[ltx.HeaderSize+20] ^= 1 }, want: "page"},
		{name: "page index size damaged", hdr: l0(5), pages: []uint32{2, 7}, mutate: func(b []byte) { b[len(b)-ltx.TrailerSize-1] ^= 0x40 }, want: "index"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.ltx", i))
			writeLTX(t, path, tt.hdr, tt.pages)
			if tt.mutate != nil {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				tt.mutate(b)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			minTXID, maxTXID := tt.hdr.MinTXID, tt.hdr.MaxTXID
			if tt.nameTXID != 0 {
				minTXID, maxTXID = tt.nameTXID, tt.nameTXID
			}
			_, err := checkLTXFile(path, tt.level, minTXID, maxTXID)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted; want an error about %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}
