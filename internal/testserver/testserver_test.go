package testserver

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIO over HTTP and HTTPS starts and serves S3 requests; creating a
// bucket twice is success (the second try of a create that timed out but
// was applied gets BucketAlreadyOwnedByYou).
func TestMinIO(t *testing.T) {
	s := StartMinIO(t, t.TempDir())
	defer s.Stop()
	CreateMinIOBucket(t, s.Endpoint, "twice")
	CreateMinIOBucket(t, s.Endpoint, "twice")
	out, err := minioS3(s.Endpoint).ListBuckets(t.Context(), &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	if !slices.Equal(names, []string{"twice"}) {
		t.Fatalf("buckets %v, want [twice]", names)
	}

	tls := StartMinIOTLS(t, t.TempDir())
	defer tls.Stop()
	if !strings.HasPrefix(tls.Endpoint, "https://127.0.0.1:") || tls.CAFile == "" {
		t.Fatalf("TLS server: endpoint %s, CA file %q", tls.Endpoint, tls.CAFile)
	}
}
