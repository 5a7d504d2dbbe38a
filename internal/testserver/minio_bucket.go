package testserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// CreateMinIOBucket creates bucket on the MinIO server at endpoint (an
// http:// one, with the test credentials). It retries for up to 30 s: MinIO
// may answer 503 for a moment after it starts, and a try that timed out on
// a loaded machine may still have created the bucket, so the retry's
// BucketAlreadyOwnedByYou is success.
func CreateMinIOBucket(tb testing.TB, endpoint, bucket string) {
	tb.Helper()
	cl := S3Client(endpoint)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		cancel()
		if owned := (*types.BucketAlreadyOwnedByYou)(nil); err == nil || errors.As(err, &owned) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("create bucket %s on %s: %v", bucket, endpoint, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval while MinIO warms up
	}
}

// S3Client is an S3 client of the MinIO server at endpoint with the test
// credentials, path-style, for a test's own requests beside the code under
// test (placing or listing objects).
func S3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(MinIOUser, MinIOPassword, ""),
	})
}
