package s3

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// WriteLTXFile uploads the LTX file read from r with its header timestamp
// in the object metadata. The file is spooled first, so that every try
// sends it whole: one PUT up to PartSize, a multipart upload above it.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	key := c.Key(level, minTXID, maxTXID)
	return backend.WriteSpooled(ctx, c.fail, key, level, minTXID, maxTXID, r, c.cfg.PartSize, func(ctx context.Context, spool *backend.Spool, createdAt time.Time) error {
		return c.put(ctx, key, spool, createdAt)
	})
}

// put uploads spool to key: one PUT up to PartSize, a multipart upload
// above it. The client remembers the ETag and timestamp of what it wrote.
func (c *Client) put(ctx context.Context, key string, spool *backend.Spool, createdAt time.Time) error {
	cl, err := c.client(ctx)
	if err != nil {
		return err
	}
	meta := map[string]string{MetadataTimestamp: backend.FormatTimestamp(createdAt)}
	var etag string
	parts := 1
	if spool.Size() <= c.cfg.PartSize {
		err = c.do(ctx, c.cfg.Retry, "put "+key, func(ctx context.Context) error {
			out, err := cl.PutObject(ctx, &s3.PutObjectInput{
				Bucket:        aws.String(c.cfg.Bucket),
				Key:           aws.String(key),
				Body:          retry.Progress(ctx, spool.Reader()),
				ContentLength: aws.Int64(spool.Size()),
				ContentType:   aws.String("application/octet-stream"),
				Metadata:      meta,
			})
			if err == nil {
				etag = aws.ToString(out.ETag)
			}
			return err
		})
	} else {
		etag, parts, err = c.putMultipart(ctx, cl, key, spool, meta)
	}
	if err != nil {
		c.forget(key)
		return err
	}
	c.remember(key, etag, createdAt)
	c.log.Debug("wrote ltx file", "key", key, "size", spool.Size(), "parts", parts)
	return nil
}

// putMultipart uploads spool as a multipart upload of PartSize parts,
// Concurrency at a time, each part retried on its own. On failure the
// upload is aborted, so no partial object appears. It returns the ETag and
// the number of parts.
func (c *Client) putMultipart(ctx context.Context, cl *s3.Client, key string, spool *backend.Spool, meta map[string]string) (string, int, error) {
	var id string
	err := c.do(ctx, c.cfg.Retry, "create multipart upload "+key, func(ctx context.Context) error {
		out, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:      aws.String(c.cfg.Bucket),
			Key:         aws.String(key),
			ContentType: aws.String("application/octet-stream"),
			Metadata:    meta,
		})
		if err == nil {
			id = aws.ToString(out.UploadId)
		}
		return err
	})
	if err != nil {
		return "", 0, err
	}
	abort := func() {
		// The upload's parts cost storage until aborted: try even if
		// ctx ended, briefly.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Retry.AttemptTimeout)
		defer cancel()
		_ = c.do(actx, c.cfg.Retry, "abort multipart upload "+key, func(ctx context.Context) error {
			_, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(id)})
			if errorCode(err) == "NoSuchUpload" {
				return nil
			}
			return err
		})
	}

	size, partSize := spool.Size(), c.cfg.PartSize
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for i := range n {
		off := int64(i) * partSize
		length := min(partSize, size-off)
		num := int32(i + 1)
		g.Go(func() error {
			return c.do(gctx, c.cfg.Retry, fmt.Sprintf("put part %d of %s", num, key), func(ctx context.Context) error {
				out, err := cl.UploadPart(ctx, &s3.UploadPartInput{
					Bucket:        aws.String(c.cfg.Bucket),
					Key:           aws.String(key),
					UploadId:      aws.String(id),
					PartNumber:    aws.Int32(num),
					Body:          retry.Progress(ctx, spool.Section(off, length)),
					ContentLength: aws.Int64(length),
				})
				if err == nil {
					parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}
				}
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		abort()
		return "", 0, err
	}
	var etag string
	tries := 0
	err = c.do(ctx, c.cfg.Retry, "complete multipart upload "+key, func(ctx context.Context) error {
		tries++
		out, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(c.cfg.Bucket),
			Key:             aws.String(key),
			UploadId:        aws.String(id),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if errorCode(err) == "NoSuchUpload" && tries > 1 {
			// An earlier try completed the upload but its answer was
			// lost: the object is there if it has the upload's size.
			head, herr := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key)})
			if herr == nil && aws.ToInt64(head.ContentLength) == size && strings.HasSuffix(strings.Trim(aws.ToString(head.ETag), `"`), fmt.Sprintf("-%d", n)) {
				etag = aws.ToString(head.ETag)
				return nil
			}
			return err
		}
		if err == nil {
			etag = aws.ToString(out.ETag)
		}
		return err
	})
	if err != nil {
		abort()
		return "", 0, err
	}
	return etag, n, nil
}
