package s3

// Litestream v0.5's S3 compatibility settings (its provider recipes):
// payload signing, Accept-Encoding in the signature, Content-MD5 on
// multi-object deletes and on single PUTs, storage class, and server-side
// encryption with customer keys (SSE-C) or KMS. They are applied by SDK
// middleware, so every request of the client gets them the same way.

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Compat holds the compatibility settings; the zero value is Litestream's
// defaults: signed payloads, Accept-Encoding signed, Content-MD5 on
// deletes, none on PUTs, the bucket's storage class, no SSE.
type Compat struct {
	// UnsignedPayload sends "UNSIGNED-PAYLOAD" instead of the payload's
	// SHA-256 (sign-payload: false) and no trailing checksums.
	UnsignedPayload bool
	// NoSignAcceptEncoding leaves Accept-Encoding out of the request (and
	// so out of the signature), for proxies that rewrite it
	// (sign-accept-encoding: false).
	NoSignAcceptEncoding bool
	// NoDeleteContentMD5 sends no Content-MD5 with DeleteObjects
	// (require-content-md5: false).
	NoDeleteContentMD5 bool
	// PutContentMD5 adds Content-MD5 to single-part uploads, as object
	// lock requires (put-object-content-md5).
	PutContentMD5 bool
	// StorageClass of uploaded objects (storage-class).
	StorageClass string
	// SSECustomerKey is the base64 of a 256-bit key (sse-customer-key, or
	// the content of sse-customer-key-path); SSECustomerAlgorithm must
	// be AES256 (the default).
	SSECustomerAlgorithm string
	SSECustomerKey       string
	// SSEKMSKeyID encrypts uploads with this KMS key (sse-kms-key-id).
	SSEKMSKeyID string
}

// ReadSSECustomerKeyFile returns the key held in a file (trimmed).
func ReadSSECustomerKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("sse-customer-key-path: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// validate checks the settings and returns the SSE-C key's MD5 (base64).
func (c *Compat) validate() (keyMD5 string, err error) {
	if c.SSECustomerKey != "" && c.SSEKMSKeyID != "" {
		return "", errors.New("s3: cannot use both SSE-C (sse-customer-key) and SSE-KMS (sse-kms-key-id)")
	}
	if c.SSECustomerKey == "" {
		if c.SSECustomerAlgorithm != "" {
			return "", errors.New("s3: sse-customer-algorithm needs sse-customer-key or sse-customer-key-path")
		}
		return "", nil
	}
	if c.SSECustomerAlgorithm == "" {
		c.SSECustomerAlgorithm = "AES256"
	} else if c.SSECustomerAlgorithm != "AES256" {
		return "", fmt.Errorf("s3: sse-customer-algorithm must be AES256, got %q", c.SSECustomerAlgorithm)
	}
	key, err := base64.StdEncoding.DecodeString(c.SSECustomerKey)
	if err != nil || len(key) != 32 {
		return "", errors.New("s3: sse-customer-key must be the base64 encoding of 32 bytes")
	}
	sum := md5.Sum(key)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// apply adds the compatibility middleware to a request's stack.
func (c Compat) apply(keyMD5 string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if c.StorageClass != "" || c.SSECustomerKey != "" || c.SSEKMSKeyID != "" {
			if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("LitestreamCompatInput",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					c.setInput(in.Parameters, keyMD5)
					return next.HandleInitialize(ctx, in)
				}), middleware.Before); err != nil {
				return err
			}
		}
		if c.NoSignAcceptEncoding {
			if err := stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("LitestreamRemoveAcceptEncoding",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					if req, ok := in.Request.(*smithyhttp.Request); ok {
						req.Header.Del("Accept-Encoding")
					}
					return next.HandleFinalize(ctx, in)
				}), "Signing", middleware.Before); err != nil {
				return err
			}
		}
		if c.UnsignedPayload {
			_ = v4.RemoveComputePayloadSHA256Middleware(stack)
			if err := v4.AddUnsignedPayloadMiddleware(stack); err != nil {
				return err
			}
			_ = v4.RemoveContentSHA256HeaderMiddleware(stack)
			if err := v4.AddContentSHA256HeaderMiddleware(stack); err != nil {
				return err
			}
			// aws-chunked trailing checksums are refused with an
			// unsigned payload.
			_, _ = stack.Finalize.Remove("addInputChecksumTrailer")
		}
		md5Ops := map[string]bool{}
		if !c.NoDeleteContentMD5 {
			md5Ops["DeleteObjects"] = true
		}
		if c.PutContentMD5 {
			md5Ops["PutObject"] = true
		}
		if len(md5Ops) > 0 {
			mw := middleware.FinalizeMiddlewareFunc("LitestreamContentMD5",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					req, ok := in.Request.(*smithyhttp.Request)
					if !ok || !md5Ops[middleware.GetOperationName(ctx)] || req.Header.Get("Content-MD5") != "" {
						return next.HandleFinalize(ctx, in)
					}
					sum, err := bodyMD5(req)
					if err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("content-md5: %w", err)
					}
					req.Header.Set("Content-MD5", sum)
					return next.HandleFinalize(ctx, in)
				})
			if err := stack.Finalize.Insert(mw, "Signing", middleware.Before); err != nil {
				return err
			}
		}
		return nil
	}
}

// bodyMD5 hashes a request's body and rewinds it; the body must be
// seekable (the client's bodies are: spooled files and buffers).
func bodyMD5(req *smithyhttp.Request) (string, error) {
	h := md5.New()
	if s := req.GetStream(); s != nil {
		if !req.IsStreamSeekable() {
			return "", errors.New("the request body is not seekable")
		}
		if _, err := io.Copy(h, s); err != nil {
			return "", err
		}
		if err := req.RewindStream(); err != nil {
			return "", err
		}
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// setInput sets the storage class and SSE parameters of the operations
// that take them.
func (c Compat) setInput(params any, keyMD5 string) {
	ssec := func(alg, key, sum **string) {
		if c.SSECustomerKey != "" {
			*alg, *key, *sum = &c.SSECustomerAlgorithm, &c.SSECustomerKey, &keyMD5
		}
	}
	kms := func(sse *types.ServerSideEncryption, id **string) {
		if c.SSEKMSKeyID != "" {
			*sse, *id = types.ServerSideEncryptionAwsKms, &c.SSEKMSKeyID
		}
	}
	switch in := params.(type) {
	case *s3.PutObjectInput:
		if c.StorageClass != "" {
			in.StorageClass = types.StorageClass(c.StorageClass)
		}
		ssec(&in.SSECustomerAlgorithm, &in.SSECustomerKey, &in.SSECustomerKeyMD5)
		kms(&in.ServerSideEncryption, &in.SSEKMSKeyId)
	case *s3.CreateMultipartUploadInput:
		if c.StorageClass != "" {
			in.StorageClass = types.StorageClass(c.StorageClass)
		}
		ssec(&in.SSECustomerAlgorithm, &in.SSECustomerKey, &in.SSECustomerKeyMD5)
		kms(&in.ServerSideEncryption, &in.SSEKMSKeyId)
	case *s3.UploadPartInput:
		ssec(&in.SSECustomerAlgorithm, &in.SSECustomerKey, &in.SSECustomerKeyMD5)
	case *s3.CompleteMultipartUploadInput:
		ssec(&in.SSECustomerAlgorithm, &in.SSECustomerKey, &in.SSECustomerKeyMD5)
	case *s3.GetObjectInput:
		ssec(&in.SSECustomerAlgorithm, &in.SSECustomerKey, &in.SSECustomerKeyMD5)
	case *s3.HeadObjectInput:
		ssec(&in.SSECustomerAlgorithm, &in.SSECustomerKey, &in.SSECustomerKeyMD5)
	}
}
