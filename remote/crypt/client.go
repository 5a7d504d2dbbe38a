package crypt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"filippo.io/age"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/flight"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

// Options configure a Client.
type Options struct {
	// Recipients are the public keys every file written is encrypted to.
	// None: the client cannot write (a reader).
	Recipients []age.Recipient
	// Identities are the secret keys files are decrypted with. None: every
	// read fails with ErrNoIdentity, naming the file.
	Identities []age.Identity
	// ChunkCacheSize bounds the decrypted chunks kept for reads that use
	// part of a chunk (default 8 MiB; negative: none).
	ChunkCacheSize int64
}

// DefaultChunkCacheSize is the default Options.ChunkCacheSize.
const DefaultChunkCacheSize = 8 << 20

// sizeCacheEntries bounds the ciphertext sizes remembered from listings
// (for reads that come without the listing entry).
const sizeCacheEntries = 1 << 16

// headerTimeout bounds a header read that several readers share.
const headerTimeout = 2 * time.Minute

// keyCacheEntries bounds the file keys kept (about 300 bytes each).
const keyCacheEntries = 1 << 14

// fileID is the identity of one file.
type fileID = remote.FileID

func idOf(info *ltx.FileInfo) fileID { return remote.IDOf(info) }

type chunkKey struct {
	id    fileID
	nonce [streamNonceSize]byte
	i     int64
}

// Client is a remote.Client that encrypts every file it writes and decrypts
// every file it reads; see the package doc. It is safe for concurrent use.
type Client struct {
	inner remote.Client
	enc   *encrypter // nil: cannot write
	ids   []age.Identity

	sizes  *lru.Cache[fileID, int64]
	keys   *lru.Cache[fileID, *fileKey]
	chunks *lru.Cache[chunkKey, []byte] // nil: no chunk cache

	mu       sync.Mutex
	hdrCalls map[fileID]*hdrCall
}

type hdrCall struct {
	done chan struct{}
	key  *fileKey
	err  error
}

// New wraps inner. It fails if there are neither recipients nor identities,
// or if the recipients cannot be used together (age refuses to mix
// post-quantum and classic recipients) or make a header longer than
// AgeHeaderSize.
func New(inner remote.Client, opts Options) (*Client, error) {
	if len(opts.Recipients) == 0 && len(opts.Identities) == 0 {
		return nil, errors.New("age encryption needs recipients (to write) or identities (to read)")
	}
	c := &Client{inner: inner, ids: opts.Identities, hdrCalls: make(map[fileID]*hdrCall)}
	if len(opts.Recipients) > 0 {
		enc, err := newEncrypter(opts.Recipients)
		if err != nil {
			return nil, fmt.Errorf("age recipients: %w", err)
		}
		c.enc = enc
	}
	c.sizes, _ = lru.New[fileID, int64](sizeCacheEntries)
	c.keys, _ = lru.New[fileID, *fileKey](keyCacheEntries)
	cs := opts.ChunkCacheSize
	if cs == 0 {
		cs = DefaultChunkCacheSize
	}
	if n := cs / ChunkSize; n > 0 {
		c.chunks, _ = lru.New[chunkKey, []byte](int(n))
	}
	return c, nil
}

// Type returns the backend's URL scheme.
func (c *Client) Type() string { return c.inner.Type() }

// CanWrite reports whether the client has recipients.
func (c *Client) CanWrite() bool { return c.enc != nil }

// CanRead reports whether the client has identities.
func (c *Client) CanRead() bool { return len(c.ids) > 0 }

func (c *Client) fail(op string, id fileID, err error) error {
	return fmt.Errorf("encrypted %s replica: %s %s: %w", c.inner.Type(), op, id, err)
}

// LTXFiles lists a level. Each entry's Size is the file's plaintext size,
// computed from the stored size (see PlainSize): readers above see the
// files as plain LTX files.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	infos, err := c.inner.LTXFiles(ctx, level, seek)
	if err != nil {
		return nil, err
	}
	return c.plain(infos), nil
}

// plain remembers the listed files' stored sizes and returns them with
// their plaintext sizes.
func (c *Client) plain(infos []*ltx.FileInfo) []*ltx.FileInfo {
	out := make([]*ltx.FileInfo, len(infos))
	for i, f := range infos {
		c.sizes.Add(idOf(f), f.Size)
		g := *f
		g.Size, _ = PlainSize(f.Size)
		out[i] = &g
	}
	return out
}

// LTXFilesAll lists every level with the inner client's one listing where
// it has one (remote.AllLister), sizes as LTXFiles reports them.
func (c *Client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	infos, err := remote.ListAllWith(ctx, c.inner, exactTimes)
	if err != nil {
		return nil, err
	}
	return c.plain(infos), nil
}

// WriteLTXFile encrypts the LTX file read from r to the recipients and
// stores it, with the LTX header's timestamp as its creation time. The
// returned Size is the plaintext size, as LTXFiles reports it.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	id := fileID{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}
	if c.enc == nil {
		return nil, c.fail("write", id, errors.New("no age recipients configured: an encrypted replica is written only encrypted"))
	}
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, c.fail("write", id, fmt.Errorf("read LTX header: %w", err))
	}
	if err := hdr.Validate(); err != nil {
		return nil, c.fail("write", id, fmt.Errorf("invalid LTX header: %w", err))
	}
	if hdr.MinTXID != minTXID || hdr.MaxTXID != maxTXID {
		return nil, c.fail("write", id, fmt.Errorf("LTX header has TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID))
	}
	er, plain, err := c.enc.encryptReader(r)
	if err != nil {
		return nil, c.fail("write", id, err)
	}
	created := time.UnixMilli(hdr.Timestamp).UTC()
	info, err := c.inner.WriteLTXFile(remote.WithOpaqueWrite(ctx, created), level, minTXID, maxTXID, er)
	if err != nil {
		return nil, err
	}
	p := plain()
	want := CipherSize(p)
	if info.Size != 0 && info.Size != want {
		return nil, c.fail("write", id, fmt.Errorf("stored %d bytes, the encryption of %d bytes is %d", info.Size, p, want))
	}
	c.sizes.Add(id, want)
	c.keys.Remove(id) // a file written again has a new key
	out := *info
	out.Size = p
	if out.CreatedAt.IsZero() {
		out.CreatedAt = created
	}
	return &out, nil
}

// DeleteLTXFiles removes files.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	err := c.inner.DeleteLTXFiles(ctx, files)
	for _, f := range files {
		c.sizes.Remove(idOf(f))
		c.keys.Remove(idOf(f))
	}
	return err
}

// DeleteAll removes every file of the replica.
func (c *Client) DeleteAll(ctx context.Context) error {
	err := c.inner.DeleteAll(ctx)
	c.sizes.Purge()
	c.keys.Purge()
	if c.chunks != nil {
		c.chunks.Purge()
	}
	return err
}

// OpenLTXFile opens a plaintext byte range of a file (size 0: to the end).
// Without the listing entry the stored size comes from the last listing
// that had the file, or else from a listing of its level.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	return c.open(ctx, fileID{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}, 0, offset, size)
}

// OpenFile opens a plaintext byte range of a listed file (see
// remote.FileOpener): info.Size, the plaintext size LTXFiles reported,
// tells where the file ends without a lookup.
func (c *Client) OpenFile(ctx context.Context, info *ltx.FileInfo, offset, size int64) (io.ReadCloser, error) {
	return c.open(ctx, idOf(info), info.Size, offset, size)
}

func (c *Client) open(ctx context.Context, id fileID, plainHint, off, size int64) (io.ReadCloser, error) {
	rc, err := c.open1(ctx, id, plainHint, off, size)
	if err != nil {
		return nil, c.fail("read", id, fmt.Errorf("bytes %d+%d: %w", off, size, err))
	}
	return rc, nil
}

// cipherSize returns the stored size of a file.
func (c *Client) cipherSize(ctx context.Context, id fileID, plainHint int64) (int64, error) {
	if n, ok := c.sizes.Get(id); ok {
		return n, nil
	}
	if plainHint > 0 {
		return CipherSize(plainHint), nil
	}
	infos, err := c.inner.LTXFiles(ctx, id.Level, id.MinTXID)
	if err != nil {
		return 0, err
	}
	for _, f := range infos {
		c.sizes.Add(idOf(f), f.Size)
	}
	if n, ok := c.sizes.Get(id); ok {
		return n, nil
	}
	return 0, fmt.Errorf("not in the listing of level %d: %w", id.Level, remote.ErrNotExist)
}

// plainRange checks a read of plaintext bytes [off, off+size) (size 0: to
// the end) against the file's sizes before any data is requested, and
// returns the file's cipher and plaintext sizes and the range's end. A
// cipher size no encrypted file can have (a plaintext replica, or a
// truncated or foreign file) is a permanent error: retrying cannot fix it.
// Kept out of open1 to keep that under the complexity limit.
func (c *Client) plainRange(ctx context.Context, id fileID, plainHint, off, size int64) (csize, plain, end int64, err error) {
	if off < 0 || size < 0 {
		return 0, 0, 0, fmt.Errorf("invalid range offset=%d size=%d", off, size)
	}
	csize, err = c.cipherSize(ctx, id, plainHint)
	if err != nil {
		return 0, 0, 0, err
	}
	plain, ok := PlainSize(csize)
	if !ok {
		if c.isPlaintext(ctx, id, csize) {
			return 0, 0, 0, retry.Permanent(ErrNotEncrypted)
		}
		return 0, 0, 0, retry.Permanent(fmt.Errorf("%w: %d bytes is not the size of an encrypted file (truncated, or not written with a %d-byte age header)",
			ErrTampered, csize, AgeHeaderSize))
	}
	end = off + size
	if size == 0 {
		end = plain
	}
	if off >= plain || end > plain {
		return 0, 0, 0, fmt.Errorf("range outside the file (%d bytes)", plain)
	}
	return csize, plain, end, nil
}

func (c *Client) open1(ctx context.Context, id fileID, plainHint, off, size int64) (io.ReadCloser, error) {
	if len(c.ids) == 0 {
		return nil, retry.Permanent(fmt.Errorf("%w: the replica is encrypted; reading it needs an age identity", ErrNoIdentity))
	}
	csize, plain, end, err := c.plainRange(ctx, id, plainHint, off, size)
	if err != nil {
		return nil, err
	}
	first, last := off/ChunkSize, (end-1)/ChunkSize
	final := chunkCount(plain) - 1

	key, haveKey := c.keys.Get(id)
	if haveKey {
		if b := c.fromCache(id, key, first, last, off, end); b != nil {
			return io.NopCloser(bytes.NewReader(b)), nil
		}
	}
	start, stop := chunkOffset(first), chunkOffset(last+1)
	if last == final {
		stop = csize
	}
	// A cold file needs its header for the key, and concurrent reads of
	// one cold file (an index build reads its head and its tail at once)
	// share one header read:
	//   - a read of the first chunk reads the header in the same request
	//     (it directly precedes the chunk) and hands the key to the others;
	//   - any other read waits for a header read in flight, or starts one
	//     that also brings the first chunk along (which the head read of
	//     the same build then finds in the chunk cache), concurrently with
	//     its own chunks: one more request, no more round trips.
	var call *hdrCall
	inline := false
	if !haveKey {
		call, inline = c.headerFor(ctx, id, first == 0, csize)
		if !inline && first == 0 {
			// Another read is fetching the header and the first chunk:
			// wait, and the first chunk may then come from the cache.
			if err := waitCall(ctx, call); err != nil {
				return nil, err
			}
			key = call.key
			if b := c.fromCache(id, key, first, last, off, end); b != nil {
				return io.NopCloser(bytes.NewReader(b)), nil
			}
		}
	}
	if inline {
		start = 0
	}
	body, err := c.inner.OpenLTXFile(ctx, id.Level, id.MinTXID, id.MaxTXID, start, stop-start)
	if err != nil {
		if inline {
			c.complete(id, call, nil, err)
		}
		return nil, err
	}
	fresh := call != nil
	switch {
	case inline:
		hb := make([]byte, PayloadOffset)
		if _, err = io.ReadFull(body, hb); err != nil {
			err = fmt.Errorf("read age header: %w", err)
		} else if key, err = parseHeader(hb, c.ids); err != nil {
			err = retry.Permanent(err)
		}
		c.complete(id, call, key, err)
		if err != nil {
			body.Close()
			return nil, err
		}
	case call != nil && key == nil:
		if err := waitCall(ctx, call); err != nil {
			body.Close()
			return nil, err
		}
		key = call.key
	}
	return &decReader{c: c, id: id, body: body, key: key, fresh: fresh,
		i: first, first: first, last: last, final: final,
		skip: int(off - first*ChunkSize), left: end - off, lastEnd: int(end - last*ChunkSize),
		csize: csize}, nil
}

// waitCall waits for a header read; its error is the call's.
func waitCall(ctx context.Context, call *hdrCall) error {
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// headerFor returns the header read of a cold file: one in flight, or, if
// none is, a new one. With inlineOK the new one is the caller's: inline is
// true and the caller must complete it. Otherwise a background read of
// the header and the first chunk starts.
func (c *Client) headerFor(ctx context.Context, id fileID, inlineOK bool, csize int64) (call *hdrCall, inline bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if call, ok := c.hdrCalls[id]; ok {
		return call, false
	}
	call = &hdrCall{done: make(chan struct{})}
	c.hdrCalls[id] = call
	if inlineOK {
		return call, true
	}
	// The read outlives a caller that gives up: others may be waiting for
	// it (each waits on its own context too).
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), headerTimeout)
	go func() {
		defer cancel()
		key, err := c.readHeader(hctx, id, csize)
		c.complete(id, call, key, err)
	}()
	return call, false
}

// complete publishes a header read's result.
func (c *Client) complete(id fileID, call *hdrCall, key *fileKey, err error) {
	if err == nil {
		c.keys.Add(id, key)
	}
	call.key, call.err = key, err
	flight.Finish(&c.mu, c.hdrCalls, id, call.done)
}

// readHeader reads a file's header and its first chunk, returns the key
// and keeps the chunk in the chunk cache.
func (c *Client) readHeader(ctx context.Context, id fileID, csize int64) (*fileKey, error) {
	n := int64(PayloadOffset)
	if c.chunks != nil {
		n = min(chunkOffset(1), csize)
	}
	rc, err := c.inner.OpenLTXFile(ctx, id.Level, id.MinTXID, id.MaxTXID, 0, n)
	if err != nil {
		return nil, fmt.Errorf("read age header: %w", err)
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("read age header: %w", err)
	}
	key, err := parseHeader(b, c.ids)
	if err != nil {
		return nil, retry.Permanent(err)
	}
	if n > PayloadOffset {
		// The first chunk is cached only if it authenticates; if it does
		// not, the read that wants it reports that.
		if pt, err := key.open(nil, b[PayloadOffset:], 0, n == csize); err == nil {
			c.chunks.Add(chunkKey{id, key.nonce, 0}, pt)
		}
	}
	return key, nil
}

// fromCache returns plaintext [off, end) if every chunk first..last of it is
// in the chunk cache, else nil.
func (c *Client) fromCache(id fileID, key *fileKey, first, last, off, end int64) []byte {
	if c.chunks == nil || last-first > 1 {
		return nil
	}
	out := make([]byte, 0, end-off)
	for i := first; i <= last; i++ {
		b, ok := c.chunks.Get(chunkKey{id, key.nonce, i})
		if !ok {
			return nil
		}
		lo, hi := max(off-i*ChunkSize, 0), min(end-i*ChunkSize, int64(len(b)))
		if lo > hi {
			return nil
		}
		out = append(out, b[lo:hi]...)
	}
	if int64(len(out)) != end-off {
		return nil
	}
	return out
}

// decReader decrypts chunks first..last of one file as they arrive and
// yields plaintext [first*ChunkSize+skip, ...) of left bytes.
type decReader struct {
	c     *Client
	id    fileID
	body  io.ReadCloser
	key   *fileKey
	fresh bool // the key was read for this read (not cached)
	csize int64

	i, first, last, final int64
	skip                  int // plaintext bytes of chunk first before the range
	lastEnd               int // end of the range within chunk last
	left                  int64

	ct  *[]byte // from ctPool, returned by Close
	pt  []byte
	cur []byte
	err error
}

func (r *decReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			return 0, io.EOF
		}
		if r.i > r.last {
			r.err = r.c.fail("read", r.id, fmt.Errorf("internal error: %d bytes left after the last chunk", r.left))
			return 0, r.err
		}
		if err := r.next(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.left -= int64(n)
	return n, nil
}

// next reads, decrypts and authenticates chunk r.i.
func (r *decReader) next() error {
	if r.ct == nil {
		r.ct = ctPool.Get().(*[]byte)
	}
	if r.pt == nil {
		r.pt = make([]byte, 0, ChunkSize)
	}
	n := int64(encChunkSize)
	if r.i == r.final {
		n = r.csize - chunkOffset(r.i)
	}
	ct := (*r.ct)[:n]
	if _, err := io.ReadFull(r.body, ct); err != nil {
		return r.c.fail("read", r.id, fmt.Errorf("chunk %d: %w", r.i, err))
	}
	pt, err := r.key.open(r.pt, ct, r.i, r.i == r.final)
	if err != nil {
		err = fmt.Errorf("chunk %d: %w", r.i, ErrTampered)
		if !r.fresh {
			// The key came from the cache: the file may have been written
			// again since (a retried upload has a new key). Forget it, so
			// that a retry reads the header afresh; a retry that fails
			// again is final.
			r.c.keys.Remove(r.id)
			return r.c.fail("read", r.id, err)
		}
		return retry.Permanent(r.c.fail("read", r.id, err))
	}
	lo, hi := 0, len(pt)
	if r.i == r.first {
		lo = r.skip
	}
	if r.i == r.last {
		hi = r.lastEnd
	}
	if lo > hi || hi > len(pt) {
		return retry.Permanent(r.c.fail("read", r.id, fmt.Errorf("chunk %d: %w: %d bytes", r.i, ErrTampered, len(pt))))
	}
	if (lo > 0 || hi < len(pt)) && r.c.chunks != nil {
		// Part of this chunk is unused: a neighbouring read (the next page)
		// may want it.
		// The cache takes the buffer (never written again: r.cur only
		// reads it); the next chunk gets a new one.
		r.c.chunks.Add(chunkKey{r.id, r.key.nonce, r.i}, pt)
		r.pt = nil
	}
	r.cur = pt[lo:hi]
	r.i++
	return nil
}

func (r *decReader) Close() error {
	if r.ct != nil {
		ctPool.Put(r.ct)
		r.ct = nil
	}
	return r.body.Close()
}

// ctPool holds ciphertext buffers of one chunk: a page read would
// otherwise allocate (and zero) 64 KiB for each chunk it opens.
var ctPool = sync.Pool{New: func() any { b := make([]byte, encChunkSize); return &b }}

// RequestCounts returns the backend's request counts (remote.RequestCounter):
// what the storage was sent, header reads of cold files included, so that
// metrics above the encryption count requests as the provider bills them.
func (c *Client) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.inner)
	return n
}

// isPlaintext reports whether a file whose size no encrypted file has
// begins like a plain LTX file (one more request, on this error path only),
// so that the error says "not encrypted" rather than "truncated".
func (c *Client) isPlaintext(ctx context.Context, id fileID, csize int64) bool {
	rc, err := c.inner.OpenLTXFile(ctx, id.Level, id.MinTXID, id.MaxTXID, 0, min(csize, 4))
	if err != nil {
		return false
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return err == nil && bytes.HasPrefix(b, []byte("LTX"))
}

// ListRaw lists objects outside the LTX layout (remote.RawReader): Litestream
// v0.3's generations/, which restore reads. A backend that cannot list them
// has none.
func (c *Client) ListRaw(ctx context.Context, prefix string) ([]remote.RawObject, error) {
	raw, ok := c.inner.(remote.RawReader)
	if !ok {
		return nil, nil
	}
	return raw.ListRaw(ctx, prefix)
}

// OpenRaw opens an object outside the LTX layout and decrypts it: Litestream
// v0.3 encrypted each snapshot and WAL segment whole with age (its `age:`
// section, the same keys), unpadded, so it is read from the start with age
// itself. As for LTX files, a plaintext object is refused.
func (c *Client) OpenRaw(ctx context.Context, key string) (io.ReadCloser, error) {
	raw, ok := c.inner.(remote.RawReader)
	if !ok {
		return nil, fmt.Errorf("encrypted %s replica: read %s: %w", c.inner.Type(), key, remote.ErrNotExist)
	}
	fail := func(err error) error {
		return fmt.Errorf("encrypted %s replica: read %s: %w", c.inner.Type(), key, err)
	}
	if len(c.ids) == 0 {
		return nil, fail(ErrNoIdentity)
	}
	rc, err := raw.OpenRaw(ctx, key)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(rc)
	if head, _ := br.Peek(len(ageIntro)); !bytes.Equal(head, ageIntro) {
		rc.Close()
		return nil, fail(ErrNotEncrypted)
	}
	r, err := age.Decrypt(br, c.ids...)
	if err != nil {
		rc.Close()
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fail(ErrWrongIdentity)
		}
		return nil, fail(fmt.Errorf("%w: %v", ErrTampered, err))
	}
	return struct {
		io.Reader
		io.Closer
	}{r, rc}, nil
}
