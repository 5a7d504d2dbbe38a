package remote

import (
	"bytes"
	"context"
	"errors"
	"time"
)

type opaqueKey struct{}

// WithOpaqueWrite returns a context for a WriteLTXFile call whose bytes are
// not a readable LTX file: an encrypted one (remote/crypt). A backend given
// such a context stores the bytes as they are, with createdAt as the file's
// stored creation time, instead of reading the LTX header from them (which
// it cannot: the header is encrypted too). Wrappers pass the context on
// unchanged, so the request reaches the backend whatever sits in between.
//
// A backend that ignored it would try to read an LTX header from the
// ciphertext and fail: the failure mode is an error, never a plaintext
// upload.
func WithOpaqueWrite(ctx context.Context, createdAt time.Time) context.Context {
	return context.WithValue(ctx, opaqueKey{}, createdAt.UTC())
}

// OpaqueWrite returns the creation time WithOpaqueWrite put into ctx, and
// whether it did.
func OpaqueWrite(ctx context.Context) (createdAt time.Time, ok bool) {
	t, ok := ctx.Value(opaqueKey{}).(time.Time)
	return t, ok
}

// ErrEncrypted is the error of reading an age-encrypted file (remote/crypt)
// as a plain LTX file: the reader has no identity configured.
var ErrEncrypted = errors.New("the file is encrypted with age; reading it needs an age identity (age.identities in the replica's configuration, or LITESTREAM_AGE_IDENTITY_FILE)")

// ExplainHeader returns err, the failure to decode the LTX header b, or
// ErrEncrypted when b is the start of an age file, so that a reader without
// an identity says why instead of "invalid LTX file".
func ExplainHeader(b []byte, err error) error {
	if bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
		return ErrEncrypted
	}
	return err
}
