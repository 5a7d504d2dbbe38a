package vfs

// The VFS reads page frames by byte range, which cannot check a file's
// CRC-64: a flipped byte inside an LZ4 block can decode to a wrong page of
// the right size. For small files a range read costs one request either way,
// so verifyingClient reads them whole instead, verifies them completely
// (index.VerifyFile: header against the name, every page, the page index,
// the checksum) and serves every range request of such a file, the page
// index reads and page reads alike, from the verified bytes. A file that
// fails verification is an error naming it (the fetcher retries it like any
// failed read, so a transfer error heals); nothing of it is served.
//
// Verified files are kept, bounded by bytes, so that the pages of a hot small
// file do not cost a whole-file read per cache miss; a file evicted from
// here is read and verified again.

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// DefaultWholeFileSize is the default ReplicaOptions.WholeFileSize: files up
// to 1 MiB are read whole and verified. At this size a whole read costs
// about as much as the page-index tail and a few page reads it replaces.
const DefaultWholeFileSize = 1 << 20

type verifyingClient struct {
	remote.Client
	max    int64 // files up to this size are verified whole
	budget int64 // bytes of verified files kept

	mu       sync.Mutex
	files    map[remote.FileID]*list.Element
	lru      list.List // of *verifiedFile, most recent first
	bytes    int64
	inflight map[remote.FileID]*verifyCall
}

type verifiedFile struct {
	key  remote.FileID
	data []byte
}

type verifyCall struct {
	done chan struct{}
	data []byte
	err  error
}

func newVerifyingClient(c remote.Client, max, budget int64) *verifyingClient {
	return &verifyingClient{Client: c, max: max, budget: budget,
		files: make(map[remote.FileID]*list.Element), inflight: make(map[remote.FileID]*verifyCall)}
}

// LTXFilesAll and RequestCounts pass the optional methods of the wrapped
// client on.
func (c *verifyingClient) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	return remote.ListAllWith(ctx, c.Client, exactTimes)
}

func (c *verifyingClient) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.Client)
	return n
}

// OpenFile is OpenLTXFile for a listed file: knowing its size, it serves a
// small file from its verified whole bytes (see remote.FileOpener; the page
// index reads and the fetcher's page reads come this way). OpenLTXFile,
// which has no size, reads the range as it is.
func (c *verifyingClient) OpenFile(ctx context.Context, info *ltx.FileInfo, offset, size int64) (io.ReadCloser, error) {
	if info.Size <= 0 || info.Size > c.max {
		return c.Client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, offset, size)
	}
	b, err := c.verified(ctx, info)
	if err != nil {
		return nil, err
	}
	end := int64(len(b))
	if size > 0 {
		end = offset + size
	}
	if offset < 0 || offset > end || end > int64(len(b)) {
		return nil, fmt.Errorf("read %s bytes %d+%d: the file has %d bytes", remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID), offset, size, len(b))
	}
	return io.NopCloser(bytes.NewReader(b[offset:end])), nil
}

// verified returns the whole verified file, reading it at most once at a
// time however many callers want it.
func (c *verifyingClient) verified(ctx context.Context, info *ltx.FileInfo) ([]byte, error) {
	k := remote.IDOf(info)
	c.mu.Lock()
	if e, ok := c.files[k]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*verifiedFile).data, nil
	}
	if call, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.data, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &verifyCall{done: make(chan struct{})}
	c.inflight[k] = call
	c.mu.Unlock()

	call.data, call.err = c.readVerify(ctx, info)
	c.mu.Lock()
	delete(c.inflight, k)
	if call.err == nil {
		c.add(k, call.data)
	}
	c.mu.Unlock()
	close(call.done)
	return call.data, call.err
}

func (c *verifyingClient) readVerify(ctx context.Context, info *ltx.FileInfo) ([]byte, error) {
	// The listed size: a file that is not that long fails the read, one
	// that is longer fails verification (its trailer is not at the end).
	// c.Client has no OpenFile, so this reads the range as it is.
	b, err := remote.ReadRange(ctx, c.Client, remote.Range{File: info, Size: info.Size})
	if err != nil {
		return nil, fmt.Errorf("read %s whole: %w", remote.IDOf(info), err)
	}
	if err := index.VerifyFile(info, b); err != nil {
		return nil, err
	}
	return b, nil
}

// put verifies b as the whole of info and keeps it, so that reads of the
// file are served from it (the poller's probe read it already).
func (c *verifyingClient) put(info *ltx.FileInfo, b []byte) error {
	if err := index.VerifyFile(info, b); err != nil {
		return err
	}
	c.mu.Lock()
	c.add(remote.IDOf(info), b)
	c.mu.Unlock()
	return nil
}

// add keeps a verified file, evicting the least recently used beyond the
// budget. Must be called with c.mu held.
func (c *verifyingClient) add(k remote.FileID, b []byte) {
	if _, ok := c.files[k]; ok {
		return
	}
	c.files[k] = c.lru.PushFront(&verifiedFile{key: k, data: b})
	c.bytes += int64(len(b))
	for c.bytes > c.budget && c.lru.Len() > 1 {
		e := c.lru.Back()
		vf := e.Value.(*verifiedFile)
		c.lru.Remove(e)
		delete(c.files, vf.key)
		c.bytes -= int64(len(vf.data))
	}
}
