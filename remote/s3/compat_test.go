package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

// seenRequest is what the recording proxy saw of one request.
type seenRequest struct {
	method, query string
	header        http.Header
	md5OK         bool // Content-MD5, when present, matches the body
}

// recordingProxy forwards to MinIO and records each request's headers.
func recordingProxy(t *testing.T, endpoint string) (string, func() []seenRequest) {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []seenRequest
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seenRequest{method: r.Method, query: r.URL.RawQuery, header: r.Header.Clone(), md5OK: true}
		if m := r.Header.Get("Content-Md5"); m != "" {
			sum := md5.Sum(body)
			s.md5OK = m == base64.StdEncoding.EncodeToString(sum[:])
		}
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

// signedHeaders returns the SignedHeaders of a request's SigV4 Authorization.
func signedHeaders(h http.Header) string {
	a := h.Get("Authorization")
	_, rest, _ := strings.Cut(a, "SignedHeaders=")
	sh, _, _ := strings.Cut(rest, ",")
	return sh
}

// TestCompat: each compatibility setting changes the requests as
// Litestream's does, and replication still works (MinIO verifies the
// signatures and Content-MD5).
func TestCompat(t *testing.T) {
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	for _, tc := range []struct {
		name   string
		compat Compat
		check  func(t *testing.T, seen []seenRequest)
		// MinIO refuses SSE-C over plain HTTP and has no KMS here: the
		// requests fail there, and what matters is what the client sent.
		refused bool
	}{
		{"defaults", Compat{}, func(t *testing.T, seen []seenRequest) {
			for _, s := range seen {
				if s.method == http.MethodPost && strings.Contains(s.query, "delete") && s.header.Get("Content-Md5") == "" {
					t.Error("DeleteObjects without Content-MD5 (require-content-md5 defaults to true)")
				}
				if s.method == http.MethodPut && s.header.Get("X-Amz-Content-Sha256") == "UNSIGNED-PAYLOAD" {
					t.Error("unsigned payload by default")
				}
				if s.method == http.MethodPut && strings.Contains(s.query, "x-id=PutObject") && s.header.Get("Content-Md5") != "" {
					t.Error("Content-MD5 on a PUT without put-object-content-md5")
				}
			}
		}, false},
		{"sign-payload false", Compat{UnsignedPayload: true}, func(t *testing.T, seen []seenRequest) {
			for _, s := range seen {
				if s.method == http.MethodPut && s.header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" {
					t.Errorf("PUT with x-amz-content-sha256 %q", s.header.Get("X-Amz-Content-Sha256"))
				}
			}
		}, false},
		{"sign-accept-encoding false", Compat{NoSignAcceptEncoding: true}, func(t *testing.T, seen []seenRequest) {
			for _, s := range seen {
				if strings.Contains(signedHeaders(s.header), "accept-encoding") {
					t.Errorf("%s signs Accept-Encoding: %s", s.method, signedHeaders(s.header))
				}
			}
		}, false},
		{"require-content-md5 false, put-object-content-md5", Compat{NoDeleteContentMD5: true, PutContentMD5: true}, func(t *testing.T, seen []seenRequest) {
			puts := 0
			for _, s := range seen {
				if s.method == http.MethodPost && strings.Contains(s.query, "delete") && s.header.Get("Content-Md5") != "" {
					t.Error("DeleteObjects with Content-MD5 although require-content-md5 is false")
				}
				if s.method == http.MethodPut && strings.Contains(s.query, "x-id=PutObject") {
					puts++
					if s.header.Get("Content-Md5") == "" || !s.md5OK {
						t.Errorf("single PUT without a right Content-MD5 (%q)", s.header.Get("Content-Md5"))
					}
				}
			}
			if puts == 0 {
				t.Error("no single PUT")
			}
		}, false},
		{"storage class", Compat{StorageClass: "STANDARD"}, func(t *testing.T, seen []seenRequest) {
			for _, s := range seen {
				if s.method == http.MethodPut && strings.Contains(s.query, "x-id=PutObject") && s.header.Get("X-Amz-Storage-Class") != "STANDARD" {
					t.Errorf("PUT without the storage class")
				}
			}
		}, false},
		{"SSE-C", Compat{SSECustomerKey: key}, func(t *testing.T, seen []seenRequest) {
			n := 0
			for _, s := range seen {
				if strings.Contains(s.query, "x-id=PutObject") || strings.Contains(s.query, "x-id=GetObject") {
					n++
					if s.header.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "AES256" ||
						s.header.Get("X-Amz-Server-Side-Encryption-Customer-Key") != key {
						t.Errorf("%s %s without SSE-C headers", s.method, s.query)
					}
				}
			}
			if n < 2 {
				t.Errorf("%d PUT/GET requests", n)
			}
		}, true},
		{"SSE-KMS", Compat{SSEKMSKeyID: "arn:aws:kms:us-east-1:1:key/x"}, func(t *testing.T, seen []seenRequest) {
			for _, s := range seen {
				if strings.Contains(s.query, "x-id=PutObject") && (s.header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != "arn:aws:kms:us-east-1:1:key/x" ||
					s.header.Get("X-Amz-Server-Side-Encryption") != "aws:kms") {
					t.Errorf("PUT without the KMS key")
				}
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, seen := recordingProxy(t, endpoint)
			bucket := "compat-" + strings.NewReplacer(" ", "-", ",", "").Replace(strings.ToLower(tc.name))
			c, err := New(Config{Bucket: bucket[:min(len(bucket), 60)], Path: "db", Endpoint: proxy,
				AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword,
				Retry: retry.Policy{Attempts: 3, Max: 20 * time.Millisecond}, Logger: remotetest.Quiet, Compat: tc.compat})
			if err != nil {
				t.Fatal(err)
			}
			createBucket(t, c)
			data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 3})
			if tc.refused {
				if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err == nil {
					t.Log("MinIO took the SSE request")
				}
				if rc, err := c.OpenLTXFile(t.Context(), 0, 1, 1, 0, 0); err == nil {
					rc.Close()
				}
				tc.check(t, seen())
				return
			}
			if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			files, err := c.LTXFiles(t.Context(), 0, 0)
			if err != nil || len(files) != 1 {
				t.Fatalf("list: %v %v", files, err)
			}
			if got, err := remotetest.ReadRange(t.Context(), c, 0, 1, 1, 0, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}
			if err := c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{files[0]}); err != nil {
				t.Fatal(err)
			}
			tc.check(t, seen())
		})
	}
	if _, err := New(Config{Bucket: "b", Compat: Compat{SSECustomerKey: "short"}}); err == nil {
		t.Error("a key that is not 32 bytes was accepted")
	}
	if _, err := New(Config{Bucket: "b", Compat: Compat{SSECustomerKey: key, SSEKMSKeyID: "k"}}); err == nil {
		t.Error("SSE-C and SSE-KMS together were accepted")
	}
}
