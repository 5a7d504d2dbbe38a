package vfs

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/psanford/sqlite3vfs"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// file is one connection's handle on a replica's main database.
//
// SQLite calls a file's methods from one connection at a time, but the
// methods of other connections on the same replica run concurrently, so all
// shared state lives in the Replica; mu only guards against the rare
// host that shares a connection between threads.
type file struct {
	vfs  *VFS
	r    *Replica
	name string

	mu     sync.Mutex
	lock   sqlite3vfs.LockType
	pinned *index.Version // set from SHARED until NONE
	travel *index.Version // time travel target; nil follows the replica
	seq    seqState
	closed bool
}

// target is the version a new read transaction would see.
func (f *file) target() *index.Version {
	if f.travel != nil {
		return f.travel
	}
	return f.r.Version()
}

// view is the version reads see now: the pinned one inside a transaction,
// else the target (SQLite reads the header before it locks).
func (f *file) view() *index.Version {
	if f.pinned != nil {
		return f.pinned
	}
	return f.target()
}

func (f *file) Close() (err error) {
	defer f.vfs.recover("xClose", &err, sqlite3vfs.IOError)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.pinned, f.travel = nil, nil
		f.r.Release()
	}
	return nil
}

// ReadAt serves SQLite's xRead. A page no file holds reads as zeros; a read
// past the end of the database is a short read (zero-filled by the caller);
// a remote failure (after the fetcher's retries) is SQLITE_IOERR_READ, never
// wrong data.
func (f *file) ReadAt(p []byte, off int64) (n int, err error) {
	defer f.vfs.recover("xRead", &err, sqlite3vfs.IOErrorRead)
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.view()
	ps := int64(v.PageSize())
	size := int64(v.Commit()) * ps
	if off < 0 || off >= size {
		return 0, io.EOF
	}
	want := p
	if off+int64(len(p)) > size {
		want = p[:size-off]
	}
	ctx := context.Background()
	for n < len(want) {
		pos := off + int64(n)
		pgno := uint32(pos/ps) + 1
		inPage := pos % ps
		chunk := want[n:min(len(want), n+int(ps-inPage))]
		data, miss, err := f.r.ReadPage(ctx, v, pgno)
		if err != nil && errors.Is(err, remote.ErrNotExist) {
			// The primary deleted a file this version uses (compaction
			// and retention). The same TXID may still be buildable from
			// the files that replaced it.
			if nv, rerr := f.r.rebuild(ctx, v); rerr == nil {
				f.swap(v, nv)
				v = nv
				data, miss, err = f.r.ReadPage(ctx, v, pgno)
			} else {
				f.r.log.Warn("a file of the pinned TXID is gone and the TXID cannot be rebuilt", "txid", v.TXID(), "error", rerr)
			}
		}
		if err != nil {
			f.r.log.Error("read failed", "db", f.name, "page", pgno, "txid", v.TXID(), "error", err)
			return 0, sqlite3vfs.IOErrorRead
		}
		if data == nil {
			clear(chunk)
		} else {
			copy(chunk, data[inPage:])
		}
		if pgno == 1 {
			stampHeader(chunk, inPage, v)
		}
		if miss && data != nil {
			f.r.pf.missed(v, pgno, data)
		}
		if inPage == 0 && len(chunk) == int(ps) {
			f.r.pf.read(&f.seq, v, pgno)
		}
		n += len(chunk)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// swap replaces a version the file holds by an equivalent rebuilt one.
func (f *file) swap(old, nv *index.Version) {
	if f.pinned == old {
		f.pinned = nv
	}
	if f.travel == old {
		f.travel = nv
	}
}

// stampHeader rewrites the header fields of page 1 that the VFS owns, in
// chunk, which holds page 1's bytes from offset start (docs/ARCHITECTURE.md
// invariant 4):
//
//   - 18, 19 (file format write/read version) = 1: rollback journal mode,
//     since this VFS has no shared memory for WAL mode;
//   - 24..27 (change counter) and 92..95 (version-valid-for) = the TXID, so
//     SQLite keeps its page cache across transactions exactly until the TXID
//     moves;
//   - 28..31 (database size in pages) = the version's page count, which is
//     valid because 92..95 equals 24..27.
func stampHeader(chunk []byte, start int64, v *index.Version) {
	var b [96]byte
	b[18], b[19] = 1, 1
	binary.BigEndian.PutUint32(b[24:], uint32(v.TXID()))
	binary.BigEndian.PutUint32(b[28:], v.Commit())
	binary.BigEndian.PutUint32(b[92:], uint32(v.TXID()))
	for _, field := range [][2]int64{{18, 20}, {24, 32}, {92, 96}} {
		for i := max(field[0], start); i < min(field[1], start+int64(len(chunk))); i++ {
			chunk[i-start] = b[i]
		}
	}
}

// WriteAt refuses: the database is read-only. (SQLite never gets here: the
// open reports SQLITE_OPEN_READONLY, so a write statement fails with
// SQLITE_READONLY before touching the file.)
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	return 0, sqlite3vfs.ReadOnlyError
}

func (f *file) Truncate(size int64) error { return sqlite3vfs.ReadOnlyError }

func (f *file) Sync(flag sqlite3vfs.SyncType) error { return nil }

// FileSize is the size of the version reads see: pages times page size.
func (f *file) FileSize() (n int64, err error) {
	defer f.vfs.recover("xFileSize", &err, sqlite3vfs.IOError)
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.view()
	return int64(v.Commit()) * int64(v.PageSize()), nil
}

// Lock pins the version a read transaction sees when SQLite takes its
// SHARED lock (docs/ARCHITECTURE.md invariant 3). Any stronger lock means a
// write, which fails.
func (f *file) Lock(l sqlite3vfs.LockType) (err error) {
	defer f.vfs.recover("xLock", &err, sqlite3vfs.IOError)
	f.mu.Lock()
	defer f.mu.Unlock()
	if l >= sqlite3vfs.LockReserved {
		return sqlite3vfs.ReadOnlyError
	}
	if f.lock == sqlite3vfs.LockNone && l >= sqlite3vfs.LockShared {
		f.pinned = f.target()
	}
	f.lock = max(f.lock, l)
	return nil
}

// Unlock releases the pinned version when SQLite drops to NONE: the next
// transaction sees the replica's state as it is then.
func (f *file) Unlock(l sqlite3vfs.LockType) (err error) {
	defer f.vfs.recover("xUnlock", &err, sqlite3vfs.IOError)
	f.mu.Lock()
	defer f.mu.Unlock()
	if l == sqlite3vfs.LockNone {
		f.pinned = nil
	}
	f.lock = min(f.lock, l)
	return nil
}

// CheckReservedLock reports that no connection holds a RESERVED lock: none
// can. (sqlite3vfs passes the inverse of this value to SQLite; SQLite only
// asks when a hot journal exists, which Access says never happens.)
func (f *file) CheckReservedLock() (bool, error) { return false, nil }

func (f *file) SectorSize() int64 { return 4096 }

func (f *file) DeviceCharacteristics() sqlite3vfs.DeviceCharacteristic { return 0 }

// memFile is an in-memory temporary file (sorter spills, temp tables,
// statement journals). It lives as long as SQLite keeps it open.
type memFile struct {
	data []byte
}

func (m *memFile) Close() error { m.data = nil; return nil }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, sqlite3vfs.IOErrorRead
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > 1<<40 {
		return 0, sqlite3vfs.IOErrorWrite
	}
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		old := int64(len(m.data))
		if end > int64(cap(m.data)) {
			grown := make([]byte, end, max(end, 2*int64(cap(m.data))))
			copy(grown, m.data)
			m.data = grown
		} else {
			m.data = m.data[:end]
			clear(m.data[old:]) // bytes left over from before a Truncate
		}
	}
	return copy(m.data[off:], p), nil
}

func (m *memFile) Truncate(size int64) error {
	if size >= 0 && size < int64(len(m.data)) {
		m.data = m.data[:size]
	}
	return nil
}

func (m *memFile) Sync(flag sqlite3vfs.SyncType) error                    { return nil }
func (m *memFile) FileSize() (int64, error)                               { return int64(len(m.data)), nil }
func (m *memFile) Lock(l sqlite3vfs.LockType) error                       { return nil }
func (m *memFile) Unlock(l sqlite3vfs.LockType) error                     { return nil }
func (m *memFile) CheckReservedLock() (bool, error)                       { return false, nil }
func (m *memFile) SectorSize() int64                                      { return 4096 }
func (m *memFile) DeviceCharacteristics() sqlite3vfs.DeviceCharacteristic { return 0 }
