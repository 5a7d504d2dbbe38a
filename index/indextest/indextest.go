// Package indextest has test helpers for the index, pagecache and vfs
// packages: an in-memory remote.Client that counts and can fail requests
// (it passes remotetest.RunContract, so what tests learn from it holds for
// the real backends), a read-only client over a directory in the
// file-backend layout, and an LTX encoder for synthetic files. It is
// imported only by tests.
package indextest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
)

// Mem is an in-memory remote.Client. Its counters and hooks are safe for
// concurrent use.
type Mem struct {
	mu      sync.Mutex
	files   map[remote.FileID][]byte
	created map[remote.FileID]time.Time

	// Opens counts OpenLTXFile calls; OpenedBytes the bytes they returned.
	Opens       atomic.Int64
	OpenedBytes atomic.Int64
	// Lists counts LTXFiles calls.
	Lists atomic.Int64

	// OpenHook, if set, runs before every OpenLTXFile; a non-nil error is
	// returned from it. Set it before the client is used concurrently.
	OpenHook func(level int, minTXID, maxTXID ltx.TXID, offset, size int64) error

	// reqs counts every call by kind, as an object store would bill it.
	reqs remote.Requests
}

// RequestCounts implements remote.RequestCounter.
func (m *Mem) RequestCounts() remote.RequestCounts { return m.reqs.RequestCounts() }

// NewMem returns an empty in-memory client.
func NewMem() *Mem {
	return &Mem{files: make(map[remote.FileID][]byte), created: make(map[remote.FileID]time.Time)}
}

// Put stores data as a file of level; TXIDs come from data's header. If
// createdAt is zero the header timestamp is used.
func (m *Mem) Put(level int, data []byte, createdAt time.Time) (*ltx.FileInfo, error) {
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	if createdAt.IsZero() {
		createdAt = time.UnixMilli(hdr.Timestamp).UTC()
	}
	k := remote.FileID{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[k] = slices.Clone(data)
	m.created[k] = createdAt
	return &ltx.FileInfo{Level: level, MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID, Size: int64(len(data)), CreatedAt: createdAt}, nil
}

// Data returns the stored bytes of a file (not a copy) or nil.
func (m *Mem) Data(level int, minTXID, maxTXID ltx.TXID) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[remote.FileID{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}]
}

// SetData replaces the bytes of an existing file (to simulate corruption).
func (m *Mem) SetData(level int, minTXID, maxTXID ltx.TXID, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[remote.FileID{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}] = data
}

// Type implements remote.Client.
func (m *Mem) Type() string { return "mem" }

// LTXFiles implements remote.Client.
func (m *Mem) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	m.Lists.Add(1)
	m.reqs.Add(remote.ReqList)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*ltx.FileInfo
	for k, b := range m.files {
		if k.Level == level && k.MinTXID >= seek {
			out = append(out, &ltx.FileInfo{Level: level, MinTXID: k.MinTXID, MaxTXID: k.MaxTXID, Size: int64(len(b)), CreatedAt: m.created[k]})
		}
	}
	sortInfos(out)
	return out, nil
}

// OpenLTXFile implements remote.Client.
func (m *Mem) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	m.Opens.Add(1)
	m.reqs.Add(remote.ReqGet)
	if h := m.OpenHook; h != nil {
		if err := h(level, minTXID, maxTXID, offset, size); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := m.Data(level, minTXID, maxTXID)
	name := remote.FileDesc(level, minTXID, maxTXID)
	if b == nil {
		return nil, fmt.Errorf("mem: %s: %w", name, remote.ErrNotExist)
	}
	if offset < 0 || offset >= int64(len(b)) || size < 0 || (size > 0 && offset+size > int64(len(b))) {
		return nil, fmt.Errorf("mem: %s: range %d+%d outside %d bytes", name, offset, size, len(b))
	}
	end := int64(len(b))
	if size > 0 {
		end = offset + size
	}
	m.OpenedBytes.Add(end - offset)
	return io.NopCloser(bytes.NewReader(b[offset:end])), nil
}

// WriteLTXFile implements remote.Client: the file is stored whole or not
// at all, and only if it is an LTX file of that name.
func (m *Mem) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	name := remote.FileDesc(level, minTXID, maxTXID)
	m.reqs.Add(remote.ReqPut)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem: write %s: %w", name, err)
	}
	if level < 0 || level > remote.MaxLevel || minTXID == 0 || minTXID > maxTXID {
		return nil, fmt.Errorf("mem: write %s: invalid level or TXID range", name)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("mem: write %s: %w", name, err)
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("mem: write %s: %w", name, err)
	}
	if err := hdr.Validate(); err != nil {
		return nil, fmt.Errorf("mem: write %s: %w", name, err)
	}
	if hdr.MinTXID != minTXID || hdr.MaxTXID != maxTXID {
		return nil, fmt.Errorf("mem: write %s: LTX header has TXIDs %s-%s", name, hdr.MinTXID, hdr.MaxTXID)
	}
	return m.Put(level, b, time.Time{})
}

// DeleteLTXFiles implements remote.Client.
func (m *Mem) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	m.reqs.Add(remote.ReqDelete)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range files {
		k := remote.IDOf(f)
		delete(m.files, k)
		delete(m.created, k)
	}
	return nil
}

// DeleteAll implements remote.Client.
func (m *Mem) DeleteAll(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.files)
	clear(m.created)
	return nil
}

// Dir is a read-only remote.Client over a file-backend replica directory:
// <root>/ltx/<level>/<%016x-%016x>.ltx. CreatedAt is the file's mtime.
type Dir struct {
	root string
	// Opens counts OpenLTXFile calls.
	Opens atomic.Int64
}

// NewDir returns a client over root.
func NewDir(root string) *Dir { return &Dir{root: root} }

func (d *Dir) path(level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(d.root, "ltx", strconv.Itoa(level), ltx.FormatFilename(minTXID, maxTXID))
}

// Type implements remote.Client.
func (d *Dir) Type() string { return "dir" }

// LTXFiles implements remote.Client.
func (d *Dir) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	ents, err := os.ReadDir(filepath.Join(d.root, "ltx", strconv.Itoa(level)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []*ltx.FileInfo
	for _, e := range ents {
		minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
		if err != nil || minTXID < seek {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: fi.Size(), CreatedAt: fi.ModTime().UTC()})
	}
	sortInfos(out)
	return out, nil
}

// sortInfos orders a listing as remote.Client.LTXFiles does.
func sortInfos(infos []*ltx.FileInfo) {
	slices.SortFunc(infos, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }

// OpenLTXFile implements remote.Client.
func (d *Dir) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	d.Opens.Add(1)
	f, err := os.Open(d.path(level, minTXID, maxTXID))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if size == 0 {
		size = st.Size() - offset
	}
	if offset < 0 || size < 0 || offset+size > st.Size() {
		f.Close()
		return nil, fmt.Errorf("%s: range %d+%d outside %d bytes", f.Name(), offset, size, st.Size())
	}
	return sectionFile{io.NewSectionReader(f, offset, size), f}, nil
}

// WriteLTXFile is not supported.
func (d *Dir) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	return nil, errors.ErrUnsupported
}

// DeleteLTXFiles is not supported.
func (d *Dir) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return errors.ErrUnsupported
}

// DeleteAll is not supported.
func (d *Dir) DeleteAll(ctx context.Context) error { return errors.ErrUnsupported }

// Page is one page of a synthetic file.
type Page struct {
	Pgno uint32
	Data []byte
}

// Encode returns an LTX file with the given header fields and pages (which
// must be in ascending order), written the way Litestream v0.5 writes them
// (no rolling checksum, LZ4 block pages). Version, Flags and a zero
// Timestamp are filled in.
func Encode(hdr ltx.Header, pages []Page) ([]byte, error) {
	hdr.Version = ltx.Version
	hdr.Flags |= ltx.HeaderFlagNoChecksum
	if hdr.Timestamp == 0 {
		hdr.Timestamp = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() + int64(hdr.MaxTXID)*1000
	}
	spec := ltx.FileSpec{Header: hdr}
	for _, p := range pages {
		spec.Pages = append(spec.Pages, ltx.PageSpec{Header: ltx.PageHeader{Pgno: p.Pgno}, Data: p.Data})
	}
	return testsupport.EncodeLTX(spec)
}

// PageData returns deterministic page content for (txid, pgno): the page is
// filled with a pattern that names both, so tests can tell versions apart.
func PageData(pageSize uint32, txid ltx.TXID, pgno uint32) []byte {
	b := make([]byte, pageSize)
	for i := 0; i+16 <= len(b); i += 16 {
		copy(b[i:], fmt.Sprintf("%07d:%07d|", uint32(txid)%10000000, pgno%10000000))
	}
	return b
}
