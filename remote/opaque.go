package remote

import (
	"context"
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
