package e2e

// A MinIO server on 127.0.0.1 (internal/testserver) for the tests that
// compare both tools on the S3 layout.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litestream-go/litestream/internal/testserver"
)

// minioServer is a running MinIO.
type minioServer struct {
	endpoint string // http://host:port
	addr     string // host:port
	s3       *s3.Client
}

// startMinIO starts MinIO (internal/testserver) with a fresh data directory,
// or skips (fails under LITESTREAM_REQUIRE_SERVERS) when it is not
// installed. It stops when the test ends.
func startMinIO(t *testing.T) *minioServer {
	t.Helper()
	srv := testserver.StartMinIO(t, t.TempDir())
	return &minioServer{endpoint: srv.Endpoint, addr: strings.TrimPrefix(srv.Endpoint, "http://"), s3: testserver.S3Client(srv.Endpoint)}
}

// bucket creates a bucket, retrying while MinIO still answers 503.
func (m *minioServer) bucket(t *testing.T, name string) {
	t.Helper()
	testserver.CreateMinIOBucket(t, m.endpoint, name)
}

// url is the replica URL of bucket/path on this server, as both tools
// read it (plain HTTP for a local endpoint without a scheme).
func (m *minioServer) url(bucket, path string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1", bucket, path, m.addr)
}

// env gives both tools the credentials.
func (m *minioServer) env() []string {
	return []string{"LITESTREAM_ACCESS_KEY_ID=" + testserver.MinIOUser, "LITESTREAM_SECRET_ACCESS_KEY=" + testserver.MinIOPassword}
}
