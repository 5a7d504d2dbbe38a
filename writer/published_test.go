package writer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// An application killed inside COMMIT after its commit frame reached the WAL
// file but before SQLite published the transaction in the wal-index leaves
// frames that form a valid, committed-looking tail of the log. SQLite never
// shows that transaction, and the next writer overwrites those frames with
// other content. These tests forge exactly that tail (valid salts, checksums
// and a commit frame after the wal-index's mxFrame) and check that the
// replica always equals what SQLite shows.

// walEnd returns the WAL header and the position after the last valid commit
// frame of the log, read independently of the writer.
func (e *env) walEnd() (wal.Header, wal.Position) {
	e.t.Helper()
	f, err := os.Open(e.path + "-wal")
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, wal.HeaderSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		e.t.Fatal(err)
	}
	hdr, err := wal.ParseHeader(buf)
	if err != nil {
		e.t.Fatal(err)
	}
	end, err := wal.Scan(f, hdr, wal.Start(hdr), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return hdr, end
}

// forgeOrphan writes one transaction of valid frames, ending with a commit
// frame for a database of commit pages, at the end of the log's valid chain,
// without touching the wal-index: what a writer killed between writing its
// commit frame and publishing it leaves behind. The pages are those of the
// current image with their last 64 bytes replaced by random ones (distinct
// from anything SQLite will write there). It returns the byte range written.
func (e *env) forgeOrphan(pgnos []uint32, commit uint32) (start, end int64) {
	e.t.Helper()
	hdr, pos := e.walEnd()
	img := e.image()
	ps := int(hdr.PageSize)
	var b []byte
	sum := pos.Checksum
	for i, pgno := range pgnos {
		page := bytes.Clone(img[(int(pgno)-1)*ps : int(pgno)*ps])
		for j := ps - 64; j < ps; j++ {
			page[j] = byte(e.rng.Uint32())
		}
		c := uint32(0)
		if i == len(pgnos)-1 {
			c = commit
		}
		b, sum = wal.AppendFrame(b, hdr, sum, pgno, c, page)
	}
	f, err := os.OpenFile(e.path+"-wal", os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, pos.Offset); err != nil {
		e.t.Fatal(err)
	}
	return pos.Offset, pos.Offset + int64(len(b))
}

// pages returns the current database size in pages as SQLite shows it.
func (e *env) pages() uint32 {
	e.t.Helper()
	var n uint32
	if err := e.app.QueryRow(`PRAGMA page_count`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestOrphanedCommitNotReplicated(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(100, 300)
	e.insertSync(d, 10, 300)

	// A killed writer's transaction: valid frames, never published.
	n := e.pages()
	e.forgeOrphan([]uint32{2, n}, n)
	e.sync(d)
	e.checkReplica() // the orphan must not be in the replica

	// The next writer overwrites the orphan's frames with other content.
	e.insertSyncCheck(d, 3, 300)
	e.insertSyncCheck(d, 20, 300)
	if st := d.Status(); st.Snapshots != 1 {
		t.Errorf("%d snapshots, want 1 (continuity holds throughout)", st.Snapshots)
	}
}

// TestOrphanedCommitFirstSync: the orphan is there before the writer's first
// sync, which writes a snapshot.
func TestOrphanedCommitFirstSync(t *testing.T) {
	e := newEnv(t)
	e.insert(100, 300)
	n := e.pages()
	e.forgeOrphan([]uint32{1, 2, n}, n)
	d := e.open(e.opts())
	e.syncCheck(d)
	e.insertSyncCheck(d, 5, 300)
}

// writeLTX uploads a level-0 file by hand, as another (older) replicator
// would have written it.
func (e *env) writeLTX(txid ltx.TXID, hdr ltx.Header, pages map[uint32][]byte) {
	e.t.Helper()
	hdr.Version = ltx.Version
	hdr.Flags = ltx.HeaderFlagNoChecksum
	hdr.MinTXID, hdr.MaxTXID = txid, txid
	spec := ltx.FileSpec{Header: hdr}
	for _, pgno := range selectPages(func() map[uint32]int64 {
		m := map[uint32]int64{}
		for p := range pages {
			m[p] = 0
		}
		return m
	}(), hdr.Commit, ltx.LockPgno(hdr.PageSize)) {
		spec.Pages = append(spec.Pages, ltx.PageSpec{Header: ltx.PageHeader{Pgno: pgno}, Data: pages[pgno]})
	}
	data := testsupport.LTX(e.t, spec)
	if _, err := e.client.Client.WriteLTXFile(context.Background(), remote.L0, txid, txid, bytes.NewReader(data)); err != nil {
		e.t.Fatal(err)
	}
}

// orphanFile uploads TXID txid as a replicator reading the WAL to the end of
// its checksum chain would have: the pages of the frames in [start, end) of
// the log, read now.
func (e *env) orphanFile(txid ltx.TXID, start, end int64, commit uint32) {
	e.t.Helper()
	hdr, _ := e.walEnd()
	b, err := os.ReadFile(e.path + "-wal")
	if err != nil {
		e.t.Fatal(err)
	}
	pages := map[uint32][]byte{}
	for off := start; off < end; off += hdr.FrameSize() {
		pgno := binary.BigEndian.Uint32(b[off:])
		pages[pgno] = bytes.Clone(b[off+wal.FrameHeaderSize : off+hdr.FrameSize()])
	}
	e.writeLTX(txid, ltx.Header{
		PageSize: hdr.PageSize, Commit: commit, Timestamp: 1,
		WALOffset: start, WALSize: end - start, WALSalt1: hdr.Salt1, WALSalt2: hdr.Salt2,
	}, pages)
}

// openCapturing opens a writer whose log lines are captured, and returns the
// reason it gave for not continuing the replica ("" if it continued).
func (e *env) openCapturing() (*DB, string) {
	e.t.Helper()
	h := newCapture()
	opts := e.opts()
	opts.Logger = slog.New(h)
	d := e.open(opts)
	recs := h.take("cannot continue the replica from the WAL; next file is a snapshot")
	if len(recs) == 0 {
		return d, ""
	}
	return d, recs[0].attrs["reason"]
}

// openContinuing opens a writer (openCapturing) that must continue the
// replica from the WAL rather than snapshot.
func (e *env) openContinuing() *DB {
	e.t.Helper()
	d, reason := e.openCapturing()
	if reason != "" {
		e.t.Errorf("replica not continued: %s", reason)
	}
	return d
}

// TestResumeNotPastPublishedEnd: an older replicator uploaded an orphaned
// transaction; its frames are still in the log, unpublished. Open must not
// continue after them.
func TestResumeNotPastPublishedEnd(t *testing.T) {
	e := newEnv(t)
	d1 := e.openSynced(100, 300)
	e.close(d1)
	n := e.pages()
	start, end := e.forgeOrphan([]uint32{2, n}, n)
	e.orphanFile(2, start, end, n)

	d2, reason := e.openCapturing()
	if !strings.Contains(reason, "never published") {
		t.Errorf("reason for not continuing: %q", reason)
	}
	e.sync(d2)
	e.insert(3, 300) // overwrites the orphan's frames
	e.syncCheck(d2)
	if st := d2.Status(); st.Snapshots != 1 {
		t.Errorf("%d snapshots after Open, want 1 (the replica's last file is not in the published log)", st.Snapshots)
	}
}

// TestResumeVerifiesLastFile: an older replicator uploaded an orphaned
// transaction, and the next writer then committed other content over exactly
// the same frames. The replica's recorded WAL range is now valid and
// published, but holds other pages: Open must notice and snapshot.
func TestResumeVerifiesLastFile(t *testing.T) {
	for _, name := range []string{"other content", "other pages"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			d1 := e.openSynced(100, 300)
			e.close(d1)
			_, before := e.walEnd()
			e.insert(1, 300) // the transaction that overwrote the orphan
			_, after := e.walEnd()
			n := e.pages()
			hdr, _ := e.walEnd()
			// What the orphan held: the same range of frames, other bytes.
			b, err := os.ReadFile(e.path + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			pages := map[uint32][]byte{}
			for off := before.Offset; off < after.Offset; off += hdr.FrameSize() {
				pgno := binary.BigEndian.Uint32(b[off:])
				page := bytes.Clone(b[off+wal.FrameHeaderSize : off+hdr.FrameSize()])
				if name == "other content" {
					page[len(page)-1] ^= 0xff
				}
				pages[pgno] = page
			}
			if name == "other pages" {
				// The log's pages, plus one the orphan changed and the
				// transaction that overwrote it did not.
				img := e.image()
				extra := uint32(1)
				for ; pages[extra] != nil; extra++ {
				}
				page := bytes.Clone(img[(extra-1)*4096 : extra*4096])
				page[len(page)-1] ^= 0xff
				pages[extra] = page
			}
			e.writeLTX(2, ltx.Header{
				PageSize: hdr.PageSize, Commit: n, Timestamp: 1,
				WALOffset: before.Offset, WALSize: after.Offset - before.Offset, WALSalt1: hdr.Salt1, WALSalt2: hdr.Salt2,
			}, pages)

			d2, reason := e.openCapturing()
			want := "differs from its frame"
			if name == "other pages" {
				want = "not a full snapshot"
			}
			if !strings.Contains(reason, want) {
				t.Errorf("reason for not continuing: %q, want it to say %q", reason, want)
			}
			e.syncCheck(d2)
			if st := d2.Status(); st.Snapshots != 1 {
				t.Errorf("%d snapshots after Open, want 1", st.Snapshots)
			}
			e.insertSyncCheck(d2, 3, 300)
		})
	}
}

// TestResumeAcceptsMatchingLastFile: the check of the last file does not
// cost a snapshot when the file does match the log, whether it is an
// incremental file or the first sync's full snapshot.
func TestResumeAcceptsMatchingLastFile(t *testing.T) {
	for _, syncs := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d syncs", syncs), func(t *testing.T) {
			e := newEnv(t)
			d1 := e.openSynced(100, 300)
			if syncs == 2 {
				e.insertSync(d1, 10, 300)
			}
			e.close(d1)
			d2 := e.openContinuing()
			e.insertSync(d2, 3, 300)
			if st := d2.Status(); st.Snapshots != 0 || st.TXID != ltx.TXID(syncs+1) {
				t.Errorf("status after resume: %+v", st)
			}
			e.checkReplica()
		})
	}
}

// shmIndex reads the wal-index header as the writer does.
func (e *env) shmIndex() wal.Index {
	e.t.Helper()
	b, err := os.ReadFile(e.path + "-shm")
	if err != nil {
		e.t.Fatal(err)
	}
	x, err := wal.ParseIndex(b, binary.NativeEndian)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// writeShm overwrites the start of the wal-index, as a SQLite process would.
func (e *env) writeShm(b []byte) {
	e.t.Helper()
	f, err := os.OpenFile(e.path+"-shm", os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	// Closing this descriptor drops this process's POSIX locks on the file,
	// including those the test's SQLite connections hold; the tests below
	// only use it where that cannot matter (no concurrent checkpoint).
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		e.t.Fatal(err)
	}
}

// TestTornIndexRecoveryPublishes: a writer killed between writing the two
// copies of the wal-index header (the second copy first) leaves them
// different. The next reader rebuilds the index from the log, which
// publishes that writer's transaction: from then on SQLite shows it, and so
// must the replica.
func TestTornIndexRecoveryPublishes(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(100, 300)

	n := e.pages()
	_, end := e.forgeOrphan([]uint32{2, n}, n)
	old := e.shmIndex()
	hdr, pos := e.walEnd()
	if pos.Offset != end {
		t.Fatalf("forged frames end at %d, log at %d", end, pos.Offset)
	}
	// The header the killed writer was writing: copy 1 new, copy 0 old.
	newer := old
	newer.MaxFrame = uint32((end - wal.HeaderSize) / hdr.FrameSize())
	newer.FrameSum = pos.Checksum
	newer.Change++
	torn := wal.AppendIndex(nil, old, binary.NativeEndian)[:wal.IndexHeaderSize]
	torn = append(torn, wal.AppendIndex(nil, newer, binary.NativeEndian)[:wal.IndexHeaderSize]...)
	e.writeShm(torn)
	if _, err := d.readIndex(); !isUnsettled(err) {
		t.Fatalf("torn index read without error: %v", err)
	}

	e.sync(d) // the sync's read transaction makes SQLite recover the index
	if x := e.shmIndex(); x.MaxFrame != newer.MaxFrame {
		t.Errorf("after recovery the index publishes %d frames, want %d", x.MaxFrame, newer.MaxFrame)
	}
	e.checkReplica() // the recovered transaction is what SQLite shows
	e.insertSyncCheck(d, 5, 300)
}

// TestRestartedIndexOldLog: a writer restarts the log (the wal-index header
// says mxFrame 0 with new salts) and is killed before writing the new WAL
// header, so the WAL file still holds the old generation, fully
// checkpointed. The log is empty for SQLite; the next writer's generation
// continues the replica without a snapshot.
func TestRestartedIndexOldLog(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(100, 300)
	// Everything is uploaded and backfilled, and our pin reads only the
	// database file (read slot 0): a restart is allowed.
	e.checkpoint(d)
	x := e.shmIndex()
	if x.Backfilled != x.MaxFrame || x.MaxFrame == 0 {
		t.Fatalf("not fully checkpointed: %+v", x)
	}
	// walRestartHdr: mxFrame 0, salt1+1, a new salt2, nBackfill 0, read
	// mark 1 at 0 and the others unused.
	x.MaxFrame = 0
	x.Salt1++
	x.Salt2 ^= 0x5a5a5a5a
	x.Change++
	x.Backfilled = 0
	x.BackfillTry = 0
	x.ReadMarks = [wal.IndexReaders]uint32{0, 0, wal.ReadMarkNotUsed, wal.ReadMarkNotUsed, wal.ReadMarkNotUsed}
	e.writeShm(wal.AppendIndex(nil, x, binary.NativeEndian))

	e.syncCheck(d)
	e.insert(5, 300)
	if h, _ := e.walHeader(); h.Salt1 == x.Salt1-1 {
		t.Fatal("the application's write did not start a new generation")
	}
	e.syncCheck(d)
	e.insertSyncCheck(d, 5, 300)
	if st := d.Status(); st.Snapshots != 1 {
		t.Errorf("%d snapshots, want 1", st.Snapshots)
	}
}

// TestLogShorterThanIndexNeverUploads: when the WAL file does not hold what
// the wal-index publishes (here: its last frame is cut off), the sync fails
// with an error that says so, after retrying, and uploads nothing.
func TestLogShorterThanIndexNeverUploads(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(100, 300)
	e.insert(10, 300)
	fi, err := os.Stat(e.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(e.path+"-wal", fi.Size()-100); err != nil {
		t.Fatal(err)
	}
	err = d.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not match what SQLite's wal-index publishes") ||
		!strings.Contains(err.Error(), "nothing was uploaded") {
		t.Fatalf("sync: %v", err)
	}
	if n := len(e.files(0)); n != 1 {
		t.Errorf("%d level-0 files, want 1", n)
	}
	if st := d.Status(); st.TXID != 1 || st.LastError == "" {
		t.Errorf("status %+v", st)
	}
}
