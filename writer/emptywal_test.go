package writer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/writer/wal"
)

// TestResumeAfterEmptyWALSnapshot: a database created with journal_mode=OFF
// has an empty WAL when the writer puts it in WAL mode, so the first file (a
// snapshot) records no WAL position. After Close and Open the writer checks
// the database file against that snapshot's recorded content: unchanged, it
// continues without a second snapshot; changed behind its back (with the
// frames gone from the log), it snapshots. Every case restores to the
// application's database.
func TestResumeAfterEmptyWALSnapshot(t *testing.T) {
	tests := []struct {
		name string
		// whileClosed runs between Close and the second Open.
		whileClosed  func(e *env)
		wantSnapshot bool
		// wantTXID is the replica's TXID after the write that follows the
		// resume (2 when that write is the first file after it).
		wantTXID ltx.TXID
	}{
		{name: "nothing written while closed", wantTXID: 2, whileClosed: func(e *env) {}},
		{name: "written while closed, frames in the WAL", wantTXID: 3, whileClosed: func(e *env) { e.insert(10, 500) }},
		// The database file changed; the frames are still in the log, but
		// what the file held before is not known: a snapshot.
		{name: "written and checkpointed (PASSIVE) while closed", wantSnapshot: true, wantTXID: 3, whileClosed: func(e *env) {
			e.insert(10, 500)
			e.exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}},
		{name: "written and truncated while closed", wantSnapshot: true, wantTXID: 3, whileClosed: func(e *env) {
			e.insert(10, 500)
			e.exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		}},
		{name: "written, application closed (WAL deleted)", wantSnapshot: true, wantTXID: 3, whileClosed: func(e *env) {
			e.insert(10, 500)
			e.app.Close()
			if _, err := os.Stat(e.path + "-wal"); !os.IsNotExist(err) {
				e.t.Fatalf("the application's last close left the WAL: %v", err)
			}
			e.openApp()
		}},
		{name: "record lost", wantSnapshot: true, wantTXID: 3, whileClosed: func(e *env) {
			if err := os.Remove(filepath.Join(e.staging, fingerprintFile)); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.exec(`PRAGMA journal_mode=OFF`)
			e.insert(100, 500)
			e.app.Close()
			if _, err := os.Stat(e.path + "-wal"); !os.IsNotExist(err) {
				t.Fatalf("WAL before the writer: %v", err)
			}

			d1 := e.open(e.opts())
			e.openApp() // after the writer put the database in WAL mode
			e.sync(d1)
			f1 := readLTX(t, e.client, 0, 1, 1)
			if !isSnapshot(f1) || f1.hdr.WALOffset != wal.HeaderSize || f1.hdr.WALSize != 0 || f1.hdr.WALSalt1 != 0 {
				t.Fatalf("first file: snapshot %v, WAL offset %d salt %x; the test needs a snapshot of an empty WAL",
					isSnapshot(f1), f1.hdr.WALOffset, f1.hdr.WALSalt1)
			}
			if err := d1.Close(ctx); err != nil {
				t.Fatal(err)
			}

			tt.whileClosed(e)

			d2 := e.open(e.opts())
			e.sync(d2)
			e.insertSync(d2, 10, 500)
			txid := e.checkReplica()
			snapshots := 0
			for id := ltx.TXID(2); id <= txid; id++ {
				f := readLTX(t, e.client, 0, id, id)
				checkFile(t, f, id)
				if isSnapshot(f) {
					snapshots++
				} else if f.hdr.WALSize == 0 || f.hdr.WALSalt1 == 0 && f.hdr.WALSalt2 == 0 {
					t.Errorf("TXID %d (not a snapshot) records no WAL position", id)
				}
			}
			if st := d2.Status(); st.Snapshots != snapshots {
				t.Errorf("status counts %d snapshots, files %d", st.Snapshots, snapshots)
			}
			if got := snapshots > 0; got != tt.wantSnapshot {
				t.Errorf("after Close and Open: %d snapshots, want a snapshot: %v", snapshots, tt.wantSnapshot)
			}
			if txid != tt.wantTXID {
				t.Errorf("replica at TXID %d, want %d", txid, tt.wantTXID)
			}
		})
	}
}
