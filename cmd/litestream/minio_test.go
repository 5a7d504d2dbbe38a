package main

// A MinIO server on 127.0.0.1 for the tests that compare both tools on the
// S3 layout. The shared test servers live in remote/internal/testserver,
// which this package cannot import; this starts the same installed binary
// (scripts/testservers/minio.sh) the same way.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Keep in step with scripts/testservers/minio.sh.
const (
	minioVersion  = "v0.0.0-20260212201848-7aac2a2c5b7c"
	minioUser     = "litestream-test"
	minioPassword = "litestream-test-secret"
)

// minioServer is a running MinIO.
type minioServer struct {
	addr string // host:port
	s3   *s3.Client
}

// startMinIO starts MinIO with a fresh data directory, or skips (fails
// under LITESTREAM_REQUIRE_SERVERS) when it is not installed.
func startMinIO(t *testing.T) *minioServer {
	t.Helper()
	bin := filepath.Join(testserversDir(), "minio-"+minioVersion, "minio")
	if _, err := os.Stat(bin); err != nil {
		msg := "MinIO is not installed: run scripts/testservers/minio.sh (or make test)"
		if os.Getenv(requireServersEnv) != "" {
			t.Fatalf("%s; %s is set, so this is a failure", msg, requireServersEnv)
		}
		t.Skip(msg)
	}
	freePort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		addr := "127.0.0.1:" + strconv.Itoa(freePort())
		cmd := exec.Command(bin, "server", t.TempDir(), "--address", addr,
			"--console-address", "127.0.0.1:"+strconv.Itoa(freePort()), "--quiet")
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stop := func() { _ = cmd.Process.Kill(); <-done }
		deadline := time.Now().Add(30 * time.Second)
		up := false
		for !up && time.Now().Before(deadline) {
			select {
			case <-done:
				deadline = time.Now()
				continue
			default:
			}
			resp, err := http.Get("http://" + addr + "/minio/health/live")
			if err == nil {
				resp.Body.Close()
				up = resp.StatusCode == http.StatusOK
			}
			if !up {
				time.Sleep(50 * time.Millisecond) // polling interval while MinIO starts
			}
		}
		if !up {
			stop()
			t.Logf("MinIO did not start on %s:\n%s", addr, out.String())
			continue
		}
		t.Cleanup(stop)
		cl := s3.New(s3.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String("http://" + addr),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider(minioUser, minioPassword, ""),
		})
		return &minioServer{addr: addr, s3: cl}
	}
	t.Fatal("MinIO did not start")
	return nil
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
