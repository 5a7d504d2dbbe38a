package e2e

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/superfly/ltx"
)

// TestLargeDatabaseLockPage replicates a database larger than 1 GiB, which
// therefore contains SQLite's lock page (page 262145 at page size 4096, byte
// offset 1 GiB, never written by SQLite). The daemon's first snapshot spans
// the lock page; then one transaction grows the database and others update
// and delete rows on both sides of it. Restores at the snapshot and at the
// end are byte-identical to the source, and no LTX file holds the lock page.
//
// Rows are one per page (64 random bytes, then zeros): cheap to build and
// to compress, yet every page is distinct.
func TestLargeDatabaseLockPage(t *testing.T) {
	const pageSize = 4096
	lockPgno := ltx.LockPgno(pageSize)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "big.db")
	replica := filepath.Join(dir, "replica")
	const rowSQL = `randomblob(64) || zeroblob(3900)` // 3964 bytes: fits in one leaf page

	// Phase 1, before the daemon starts: ~1.09 GB, fast (no journal),
	// then WAL mode.
	start := time.Now()
	{
		bdb, err := sql.Open("sqlite3", "file:"+dbPath)
		if err != nil {
			t.Fatal(err)
		}
		bdb.SetMaxOpenConns(1)
		for _, q := range []string{
			"PRAGMA page_size=4096", "PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
			`CREATE TABLE big(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL, data BLOB NOT NULL)`,
			`CREATE INDEX big_tag ON big(tag)`,
			seriesSQL + `INSERT INTO big(id, tag, data) SELECT value, value % 1000, ` + rowSQL + ` FROM series`,
		} {
			if _, err := bdb.Exec(q, 265000); err != nil {
				t.Fatalf("%s: %v", firstLine(q), err)
			}
		}
		if err := bdb.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := openDB(t, dbPath)
	pages := queryInt(t, db, "PRAGMA page_count")
	if pages <= int64(lockPgno) {
		t.Fatalf("database has %d pages; the test needs more than the lock page %d", pages, lockPgno)
	}
	snapshotSum := testsupport.FileSHA256(t, dbPath)
	t.Logf("built %d pages (%.2f GiB) in %s", pages, float64(pages*pageSize)/(1<<30), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	d := startDaemon(t, daemonConfig(t, dbPath, replica))
	waitTXID(t, d, replica, 1, 3*time.Minute)
	t.Logf("first sync (snapshot across the lock page) in %s", time.Since(start).Round(time.Millisecond))

	// Phase 2: growth in one transaction, then changes on both sides of the
	// lock page: rows whose pages lie before it, next to it and after it.
	start = time.Now()
	mustExec(t, db, seriesSQL+`INSERT INTO big(id, tag, data) SELECT 265000 + value, value % 7, `+rowSQL+` FROM series`, 20000)
	mustExec(t, db, `UPDATE big SET data = `+rowSQL+`, tag = -1 WHERE id % 4999 = 0`)
	mustExec(t, db, `DELETE FROM big WHERE id BETWEEN 259000 AND 259400`)
	mustExec(t, db, `UPDATE big SET tag = tag + 1 WHERE id BETWEEN 262000 AND 262300`)
	mustExec(t, db, seriesSQL+`INSERT INTO big(id, tag, data) SELECT 300000 + value, 0, `+rowSQL+` FROM series`, 500)
	waitTXID(t, d, replica, 2, 3*time.Minute)
	d.stop()
	t.Logf("phase 2 replicated in %s", time.Since(start).Round(time.Millisecond))

	// No file carries the lock page, and every file follows the rules.
	files, err := listReplica(replica)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		ff, err := checkLTXFile(f.Path, f.Level, f.Min, f.Max)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
		} else if ff.noWAL {
			t.Logf("%s: a level-0 snapshot of an empty WAL, without WAL fields (Litestream's never lack them)", filepath.Base(f.Path))
		}
	}

	out := filepath.Join(dir, "restored.db")
	start = time.Now()
	mustCLI(t, "restore", "-integrity-check", "quick", "-txid", "1", "-o", out, fileURL(replica))
	if sum := testsupport.FileSHA256(t, out); sum != snapshotSum {
		t.Errorf("restore at TXID 1 (the snapshot): sha256 %s, source then %s", sum, snapshotSum)
	}
	t.Logf("restore at TXID 1 in %s", time.Since(start).Round(time.Millisecond))
	os.Remove(out)

	start = time.Now()
	mustCLI(t, "restore", "-integrity-check", "quick", "-o", out, fileURL(replica))
	t.Logf("restore of the latest TXID in %s", time.Since(start).Round(time.Millisecond))
	checkpoint(t, db)
	sameFiles(t, dbPath, out, pageSize)

	// The lock page reads as zeros in the restored file.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, pageSize)
	if _, err := f.ReadAt(buf, int64(lockPgno-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	for i, b := range buf {
		if b != 0 {
			t.Fatalf("restored lock page %d has byte %d = %#x, want zeros", lockPgno, i, b)
		}
	}
}
