// Package backends turns a replica URL into a remote.Client. It is the one
// place that knows which backends are compiled in; everything else (the
// command line, the extension, the VFS) goes through Open.
package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
)

// Options carries per-backend settings that do not belong in a URL, such
// as credentials from the YAML configuration or the environment. Settings
// given here take precedence over the URL's query parameters.
//
// It has no fields yet: the issue that adds each cloud backend adds its
// keys here (for S3: AccessKeyID, SecretAccessKey, Region, Endpoint,
// ForcePathStyle, SkipVerify; GCS, Azure, SFTP, NATS and WebDAV likewise),
// so callers written today keep compiling.
type Options struct{}

// Supported returns the schemes this build can open.
func Supported() []string { return []string{"file"} }

// Open parses rawURL (a URL or a plain path) and returns its client.
func Open(ctx context.Context, rawURL string) (remote.Client, error) {
	return OpenWithOptions(ctx, rawURL, Options{})
}

// OpenWithOptions is Open with per-backend settings.
func OpenWithOptions(ctx context.Context, rawURL string, opts Options) (remote.Client, error) {
	u, err := remote.ParseURL(rawURL)
	if err != nil {
		if errors.Is(err, remote.ErrUnknownScheme) {
			return nil, fmt.Errorf("%w; this build supports: %s", err, strings.Join(Supported(), ", "))
		}
		return nil, err
	}
	return OpenURL(ctx, u, opts)
}

// OpenURL returns the client for an already parsed URL. A scheme that
// remote.ParseURL knows but whose backend is not compiled in is an error
// wrapping errors.ErrUnsupported.
func OpenURL(ctx context.Context, u *remote.URL, opts Options) (remote.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		return file.New(u.Path), nil
	default:
		return nil, fmt.Errorf("replica URL %q: the %s backend is not yet supported in this build (supported: %s): %w",
			u.Redacted(), u.Scheme, strings.Join(Supported(), ", "), errors.ErrUnsupported)
	}
}
