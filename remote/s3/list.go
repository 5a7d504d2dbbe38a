package s3

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
)

// list calls fn with every object under prefix, one page of up to 1000 at
// a time, each page retried on its own. startAfter, if set, skips the keys
// up to it; delimiter "/" leaves out deeper keys.
func (c *Client) list(ctx context.Context, cl *s3.Client, prefix, startAfter, delimiter string, fn func(types.Object)) error {
	return c.listUntil(ctx, cl, prefix, startAfter, delimiter, "", fn)
}

// listUntil is list that stops before the first key at or after end (""
// for no end): keys come in byte order, so no later page can hold one
// before it.
func (c *Client) listUntil(ctx context.Context, cl *s3.Client, prefix, startAfter, delimiter, end string, fn func(types.Object)) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.cfg.Bucket), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	for {
		var page *s3.ListObjectsV2Output
		err := c.do(ctx, c.cfg.Retry, "list "+prefix, func(ctx context.Context) error {
			var err error
			page, err = cl.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if end != "" && aws.ToString(o.Key) >= end {
				return nil
			}
			fn(o)
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		if page.NextContinuationToken == nil {
			return errors.New("truncated listing without a continuation token")
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID. The
// listing starts after the seek TXID's name (names are fixed-width hex, so
// byte order is numeric order), never using the TXID as a name prefix.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	prefix := c.keys.LevelPrefix(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	// "%016x" sorts before "%016x-...ltx" and after every smaller TXID.
	startAfter := c.keys.SeekKey(level, seek)
	objs := newListing(c.keys, func(id remote.FileID) bool { return id.Level == level && id.MinTXID >= seek })
	if err := c.list(ctx, cl, prefix, startAfter, "/", objs.add); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	if c.cfg.Path == "" {
		// At the bucket root, also the keys without the leading slash:
		// MinIO stores Litestream's "/0009/..." so when it arrives by
		// multipart upload, and replicas written before this build used
		// that layout. Reads and deletes go to the key as listed.
		alt := strings.TrimPrefix(prefix, "/")
		if err := c.list(ctx, cl, alt, strings.TrimPrefix(startAfter, "/"), "/", objs.add); err != nil {
			return nil, c.fail("list", alt, err)
		}
	}
	return c.stamped(ctx, cl, objs.objs, true)
}

var _ remote.AllLister = (*Client)(nil)

// LTXFilesAll lists every level with one paginated listing of the replica
// path (1000 keys a request) instead of one listing per level. With
// exactTimes false it sends no HEAD: a file whose stored timestamp the
// client has not seen (written or listed before) gets its upload time. At
// the bucket root it falls back to listing level by level (the keys may
// lack their leading slash there, and a prefix listing would be the whole
// bucket).
func (c *Client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	if c.cfg.Path == "" {
		return nil, errors.ErrUnsupported
	}
	prefix := c.keys.AllPrefix()
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	objs := newListing(c.keys, func(remote.FileID) bool { return true })
	// The level directories "0000".."0009" sort before anything else a
	// path may hold ("generations/" of a v0.3 replica, say): stop there.
	end := c.keys.LevelPrefix(remote.MaxLevel + 1)
	if err := c.listUntil(ctx, cl, prefix, "", "", end, objs.add); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	return c.stamped(ctx, cl, objs.objs, exactTimes)
}

// listed is one LTX object of a listing.
type listed struct {
	info *ltx.FileInfo
	key  string
	etag string
}

// listing collects the LTX objects of a listing that want accepts, each
// file once.
type listing struct {
	keys remote.Keys
	want func(remote.FileID) bool
	seen map[remote.FileID]bool
	objs []listed
}

func newListing(keys remote.Keys, want func(remote.FileID) bool) *listing {
	return &listing{keys: keys, want: want, seen: map[remote.FileID]bool{}}
}

func (l *listing) add(o types.Object) {
	key := aws.ToString(o.Key)
	id, ok := l.keys.ParseKey(key)
	if !ok || !l.want(id) || l.seen[id] {
		return
	}
	l.seen[id] = true
	info := &ltx.FileInfo{Level: id.Level, MinTXID: id.MinTXID, MaxTXID: id.MaxTXID, Size: aws.ToInt64(o.Size),
		CreatedAt: aws.ToTime(o.LastModified).UTC()}
	l.objs = append(l.objs, listed{info: info, key: key, etag: aws.ToString(o.ETag)})
}

// stamped sets the files' stored timestamps, from memory where the ETag
// matches, else (exact only) with a HEAD each, and returns them ordered by
// level, then as LTXFiles orders a level. Without exact, a file not in
// memory keeps its upload time. A file gone since the listing is left out.
func (c *Client) stamped(ctx context.Context, cl *s3.Client, objs []listed, exact bool) ([]*ltx.FileInfo, error) {
	var missing []int
	c.stampsMu.Lock()
	for i, o := range objs {
		if s, ok := c.stamps[o.key]; ok && s.etag == o.etag {
			o.info.CreatedAt = s.ts
		} else if exact {
			missing = append(missing, i)
		}
	}
	c.stampsMu.Unlock()
	gone := make([]bool, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, i := range missing {
		o := objs[i]
		g.Go(func() error {
			var head *s3.HeadObjectOutput
			err := c.do(gctx, c.cfg.Retry, "head "+o.key, func(ctx context.Context) error {
				var err error
				head, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(o.key)})
				return err
			})
			if notFound(err) {
				gone[i] = true // deleted since the listing
				return nil
			} else if err != nil {
				return c.fail("list: head", o.key, err)
			}
			if ts, ok := backend.ParseTimestamp(head.Metadata[MetadataTimestamp]); ok {
				o.info.CreatedAt = ts
			}
			c.remember(o.key, aws.ToString(head.ETag), o.info.CreatedAt)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	infos := make([]*ltx.FileInfo, 0, len(objs))
	for i, o := range objs {
		if !gone[i] {
			infos = append(infos, o.info)
		}
	}
	backend.SortAll(infos)
	return infos, nil
}

func (c *Client) remember(key, etag string, ts time.Time) {
	if etag == "" {
		return
	}
	c.stampsMu.Lock()
	c.stamps[key] = stamp{etag: etag, ts: ts}
	c.stampsMu.Unlock()
}

func (c *Client) forget(keys ...string) {
	c.stampsMu.Lock()
	for _, k := range keys {
		delete(c.stamps, k)
	}
	c.stampsMu.Unlock()
}
