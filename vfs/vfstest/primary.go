// Package vfstest has test helpers for the read-replica VFS: a small
// "primary" that turns each committed transaction of a local SQLite
// database into an LTX file on a remote, and can compact and delete files
// the way the writer does, so tests control every file a reader sees.
// A remote.Client wrapper that counts, delays, fails or stalls requests is
// in faulty.go. Only tests import this package (it links
// mattn/go-sqlite3).
package vfstest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"hash/crc64"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the primary's SQLite
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
)

// Primary is a local SQLite database in rollback-journal mode whose every
// Commit is published as one level-0 LTX file (TXID 1 is a snapshot).
// Methods are safe for concurrent use with readers of the remote; calls to
// the Primary itself are serialized.
type Primary struct {
	DB     *sql.DB
	Path   string
	Client remote.Client

	mu       sync.Mutex
	txid     ltx.TXID
	pageSize uint32
	// sums is the checksum of every page as last published (index pgno-1).
	sums []uint64
	// history[txid] holds the pages changed by txid and the size after it,
	// so compactions can be built without reading files back.
	history map[ltx.TXID]change
	// Now, if set, gives the timestamp of new files (default time.Now).
	Now func() time.Time
}

type change struct {
	commit uint32
	ts     time.Time
	pages  map[uint32][]byte
}

// NewPrimary creates a database at path (page size 4096, journal mode
// DELETE so the file is complete after each commit) publishing to client.
func NewPrimary(path string, client remote.Client) (*Primary, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("PRAGMA page_size=4096; PRAGMA journal_mode=DELETE; PRAGMA cache_size=-16000"); err != nil {
		db.Close()
		return nil, fmt.Errorf("primary %s: %w", path, err)
	}
	return &Primary{DB: db, Path: path, Client: client, history: make(map[ltx.TXID]change)}, nil
}

// Close closes the database.
func (p *Primary) Close() error { return p.DB.Close() }

// TXID returns the last published TXID.
func (p *Primary) TXID() ltx.TXID {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.txid
}

// Exec runs the statements in one transaction and publishes it.
func (p *Primary) Exec(ctx context.Context, stmts ...string) (ltx.TXID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tx, err := p.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			tx.Rollback()
			return 0, fmt.Errorf("primary: %q: %w", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return p.publish(ctx)
}

// Publish writes the pages that changed since the last publish as the next
// TXID's level-0 file (the first one as a snapshot) and returns the TXID.
func (p *Primary) Publish(ctx context.Context) (ltx.TXID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.publish(ctx)
}

var crcTable = crc64.MakeTable(crc64.ISO)

func (p *Primary) publish(ctx context.Context) (ltx.TXID, error) {
	data, err := os.ReadFile(p.Path)
	if err != nil {
		return 0, err
	}
	if len(data) < 100 {
		return 0, fmt.Errorf("primary %s: database is %d bytes", p.Path, len(data))
	}
	ps := uint32(data[16])<<8 | uint32(data[17])
	if ps == 1 {
		ps = 65536
	}
	if p.pageSize != 0 && ps != p.pageSize {
		return 0, fmt.Errorf("primary: page size changed")
	}
	p.pageSize = ps
	commit := uint32(len(data) / int(ps))
	lock := ltx.LockPgno(ps)
	txid := p.txid + 1
	pages := make(map[uint32][]byte)
	sums := make([]uint64, commit)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			continue
		}
		b := data[int64(pgno-1)*int64(ps) : int64(pgno)*int64(ps)]
		sums[pgno-1] = crc64.Checksum(b, crcTable)
		if txid == 1 || int(pgno) > len(p.sums) || p.sums[pgno-1] != sums[pgno-1] {
			pages[pgno] = bytes.Clone(b)
		}
	}
	ts := time.Now()
	if p.Now != nil {
		ts = p.Now()
	}
	ts = ts.Truncate(time.Millisecond)
	if err := p.write(ctx, remote.L0, txid, txid, commit, ts, pages); err != nil {
		return 0, err
	}
	p.txid, p.sums = txid, sums
	p.history[txid] = change{commit: commit, ts: ts, pages: pages}
	return txid, nil
}

func (p *Primary) write(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, commit uint32, ts time.Time, pages map[uint32][]byte) error {
	b, err := EncodeLTX(ltx.Header{PageSize: p.pageSize, Commit: commit, MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: ts.UnixMilli()}, pages)
	if err != nil {
		return err
	}
	if _, err := p.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("primary: write %s: %w", remote.FileDesc(level, minTXID, maxTXID), err)
	}
	return nil
}

// Compact writes one file at level holding TXIDs minTXID..maxTXID (which
// must have been published): every page changed in the range, as of
// maxTXID. With minTXID 1 the file is a full snapshot.
func (p *Primary) Compact(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if minTXID < 1 || maxTXID < minTXID || maxTXID > p.txid {
		return fmt.Errorf("primary: cannot compact %s..%s (published up to %s)", minTXID, maxTXID, p.txid)
	}
	last := p.history[maxTXID]
	pages := make(map[uint32][]byte)
	for id := minTXID; id <= maxTXID; id++ {
		maps.Copy(pages, p.history[id].pages)
	}
	for pgno := range pages {
		if pgno > last.commit {
			delete(pages, pgno)
		}
	}
	return p.write(ctx, level, minTXID, maxTXID, last.commit, last.ts, pages)
}

// Delete removes files of a level whose range lies within minTXID..maxTXID.
func (p *Primary) Delete(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) error {
	infos, err := p.Client.LTXFiles(ctx, level, minTXID)
	if err != nil {
		return err
	}
	var del []*ltx.FileInfo
	for _, f := range infos {
		if f.MaxTXID <= maxTXID {
			del = append(del, f)
		}
	}
	return p.Client.DeleteLTXFiles(ctx, del)
}

// EncodeLTX returns an LTX file as Litestream v0.5 writes it: no rolling
// checksum (HeaderFlagNoChecksum), LZ4-block pages, the page index.
func EncodeLTX(hdr ltx.Header, pages map[uint32][]byte) ([]byte, error) {
	hdr.Version = ltx.Version
	hdr.Flags |= ltx.HeaderFlagNoChecksum
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		return nil, err
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return nil, err
	}
	for _, pgno := range slices.Sorted(maps.Keys(pages)) {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, pages[pgno]); err != nil {
			return nil, fmt.Errorf("encode page %d: %w", pgno, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// NewFilePrimary is NewPrimary for a test: the database and its file
// replica (the returned root) in a new temporary directory, closed when the
// test ends; stmts, if any, are its first transaction.
func NewFilePrimary(tb testing.TB, stmts ...string) (p *Primary, root string) {
	tb.Helper()
	dir := tb.TempDir()
	root = filepath.Join(dir, "replica")
	p, err := NewPrimary(filepath.Join(dir, "primary.db"), file.New(root))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	if len(stmts) > 0 {
		if _, err := p.Exec(context.Background(), stmts...); err != nil {
			tb.Fatal(err)
		}
	}
	return p, root
}
