package main

// A MinIO server on 127.0.0.1 (internal/testserver) for the tests that
// compare both tools on the S3 layout.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/litestream-go/litestream/internal/testserver"
)

const (
	minioUser     = testserver.MinIOUser
	minioPassword = testserver.MinIOPassword
)

// minioServer is a running MinIO.
type minioServer struct {
	addr string // host:port
	s3   *s3.Client
}

// startMinIO starts MinIO (internal/testserver) with a fresh data directory,
// or skips (fails under LITESTREAM_REQUIRE_SERVERS) when it is not
// installed. It stops when the test ends.
func startMinIO(t *testing.T) *minioServer {
	t.Helper()
	srv := testserver.StartMinIO(t, t.TempDir())
	t.Cleanup(srv.Stop)
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(minioUser, minioPassword, ""),
	})
	return &minioServer{addr: strings.TrimPrefix(srv.Endpoint, "http://"), s3: cl}
}

// bucket creates a bucket, retrying while MinIO still answers 503.
func (m *minioServer) bucket(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := m.s3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create bucket %s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval while MinIO warms up
	}
}

// keys lists the object keys of a bucket, sorted.
func (m *minioServer) keys(t *testing.T, bucket string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(m.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	sort.Strings(out)
	return out
}

// url is the replica URL of bucket/path on this server, as both tools
// read it (plain HTTP for a local endpoint without a scheme).
func (m *minioServer) url(bucket, path string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1", bucket, path, m.addr)
}

// env gives both tools the credentials.
func (m *minioServer) env() []string {
	return []string{"LITESTREAM_ACCESS_KEY_ID=" + minioUser, "LITESTREAM_SECRET_ACCESS_KEY=" + minioPassword}
}
