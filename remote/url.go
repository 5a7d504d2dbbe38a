package remote

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Schemes lists every replica URL scheme the project knows, in the order
// error messages show them. Whether a backend is compiled in is a separate
// question answered by package remote/backends.
var schemes = []string{"file", "s3", "gs", "abs", "sftp", "nats", "webdav", "webdavs"}

// Schemes returns every replica URL scheme ParseURL accepts.
func Schemes() []string { return append([]string(nil), schemes...) }

// ErrUnknownScheme is returned (wrapped) by ParseURL for a scheme that is not
// in Schemes().
var ErrUnknownScheme = errors.New("unknown replica URL scheme")

// redactedValue replaces passwords and secret query values in printed URLs.
// It is what net/url's Redacted uses.
const redactedValue = "xxxxx"

// URL is a parsed replica URL. The forms are:
//
//	/abs/path, rel/path, ~/path        a file replica (Scheme "file")
//	file:///abs/path                   a file replica
//	s3://bucket/path?endpoint=...      Host is the bucket
//	gs://bucket/path                   Host is the bucket
//	abs://account@container/path       User and Host: see below
//	sftp://user[:password]@host:22/path
//	nats://host:4222/bucket/path       the bucket is Path's first segment
//	webdav://host/path, webdavs://host/path
//
// For abs the URL only records User and Host; the abs backend decides their
// meaning. Note that Litestream v0.5 documents abs://STORAGEACCOUNT@CONTAINER/PATH
// (user = account, host = container).
//
// The password and the query are unexported so that encoding a URL (JSON,
// %+v of a struct holding one) cannot leak secrets; String, Redacted and
// LogValue hide them.
type URL struct {
	// Scheme is one of Schemes(), lower case.
	Scheme string
	// Host is host[:port], or the bucket/container name for object stores.
	// Empty for file.
	Host string
	// User is the user name of the URL's userinfo, if any.
	User string
	// Path is, for file, the absolute, cleaned file system path of the
	// replica root. For every other scheme it is the URL path, unescaped and
	// cleaned, without leading or trailing "/"; "" means the root.
	Path string

	password    string
	hasPassword bool
	query       url.Values
}

// Password returns the password of the URL's userinfo and whether one was set.
func (u *URL) Password() (string, bool) { return u.password, u.hasPassword }

// Query returns a copy of the URL's query parameters (e.g. endpoint, region).
func (u *URL) Query() url.Values {
	q := make(url.Values, len(u.query))
	for k, v := range u.query {
		q[k] = append([]string(nil), v...)
	}
	return q
}

// QueryValue returns the first value of the query parameter key, or "".
func (u *URL) QueryValue(key string) string { return u.query.Get(key) }

// String returns the URL with its password and secret query values hidden;
// it is the same as Redacted.
func (u URL) String() string { return u.Redacted() }

// LogValue makes slog print the redacted form.
func (u URL) LogValue() slog.Value { return slog.StringValue(u.Redacted()) }

// Redacted returns the URL in URL syntax (file replicas as file:///path),
// with the password and the values of secret-looking query parameters
// replaced by "xxxxx".
func (u URL) Redacted() string {
	out := url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.User != "" || u.hasPassword {
		if u.hasPassword {
			out.User = url.UserPassword(u.User, redactedValue)
		} else {
			out.User = url.User(u.User)
		}
	}
	switch {
	case u.Scheme == "file":
		out.Path = u.Path
	case u.Path != "":
		out.Path = "/" + u.Path
	}
	out.RawQuery = redactQuery(u.query).Encode()
	return out.String()
}

// secretParams are the substrings that make a URL query parameter (or a
// configuration key) secret: its value is hidden in every printed URL, log
// line and error message. This is the project's one list; every redaction
// (remote.URL, the CLI's messages, the VFS's logs) asks IsSecretParam. It
// errs on the side of hiding: an access key id is not secret but "key"
// hides it too.
var secretParams = []string{"key", "secret", "token", "pass", "sig", "credential", "creds",
	"sas", "seed", "jwt"}

// IsSecretParam reports whether the query parameter key holds a credential
// (see secretParams); case does not matter.
func IsSecretParam(key string) bool {
	k := strings.ToLower(key)
	for _, s := range secretParams {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func redactQuery(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		if IsSecretParam(k) {
			vv := make([]string, len(v))
			for i := range vv {
				vv[i] = redactedValue
			}
			out[k] = vv
		} else {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// ParseURL parses a replica URL or a plain file system path (see URL).
// A string without "://" and without a "file:" prefix is a path; a relative
// path is made absolute against the working directory and "~" is the home
// directory. Errors name the URL with its secrets hidden.
func ParseURL(raw string) (*URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("replica URL is empty")
	}
	if !strings.Contains(raw, "://") && !strings.HasPrefix(strings.ToLower(raw), "file:") {
		p, err := absPath(raw)
		if err != nil {
			return nil, fmt.Errorf("replica path %q: %w", raw, err)
		}
		return &URL{Scheme: "file", Path: p}, nil
	}

	pu, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, password included: report only
		// the cause, with our own redacted copy of the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("replica URL %q: %w", redactRaw(raw), err)
	}
	u := &URL{Scheme: strings.ToLower(pu.Scheme), Host: pu.Host}
	if pu.User != nil {
		u.User = pu.User.Username()
		u.password, u.hasPassword = pu.User.Password()
	}
	// Errors show the URL as written, minus its secrets.
	shown := redactRaw(raw)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("replica URL %q: %s", shown, fmt.Sprintf(format, args...))
	}
	// url.URL.Query drops malformed pairs silently; a dropped endpoint or
	// key would be a confusing failure much later.
	if u.query, err = url.ParseQuery(pu.RawQuery); err != nil {
		return nil, bad("query: %v", err)
	}
	if pu.Fragment != "" || strings.HasSuffix(raw, "#") {
		// Silently cutting a path at '#' would replicate somewhere else.
		return nil, bad("unexpected fragment %q (escape '#' in paths as %%23)", "#"+pu.Fragment)
	}
	if pu.Opaque != "" {
		return nil, bad("expected %s://... (got %q after the scheme)", u.Scheme, pu.Opaque)
	}

	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, bad("file URL has host %q; use file:///absolute/path or a plain path", u.Host)
		}
		u.Host = ""
		if pu.User != nil {
			return nil, bad("file URL cannot have a user")
		}
		if pu.Path == "" || pu.Path == "/" {
			return nil, bad("file URL needs a directory path, e.g. file:///var/lib/replica")
		}
		u.Path = filepath.Clean(pu.Path)
		return u, nil
	case "s3", "gs", "abs", "sftp", "nats", "webdav", "webdavs":
		if u.Host == "" {
			return nil, bad("missing %s", hostWord(u.Scheme))
		}
		if p := strings.Trim(pu.Path, "/"); p != "" {
			u.Path = CleanRoot(p)
		}
		if u.Scheme == "nats" && u.Path == "" {
			return nil, bad("missing object store bucket: use nats://host:4222/bucket[/path]")
		}
		return u, nil
	case "":
		return nil, bad("missing scheme")
	default:
		return nil, fmt.Errorf("replica URL %q: %w %q (known: %s)", shown, ErrUnknownScheme, u.Scheme, strings.Join(schemes, ", "))
	}
}

func hostWord(scheme string) string {
	switch scheme {
	case "s3", "gs":
		return "bucket (" + scheme + "://bucket/path)"
	case "abs":
		return "container (abs://account@container/path)"
	default:
		return "host"
	}
}

// absPath expands a leading "~" and makes p absolute and clean.
func absPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand ~: %w", err)
		}
		p = filepath.Join(home, p[1:])
	}
	return filepath.Abs(p)
}

// redactRaw hides the password and secret query values of a string that
// net/url could not parse, as well as it can without parsing it.
func redactRaw(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		auth := rest[:end]
		if at := strings.LastIndex(auth, "@"); at >= 0 {
			if c := strings.Index(auth[:at], ":"); c >= 0 {
				auth = auth[:c+1] + redactedValue + auth[at:]
			}
		}
		s = s[:i+3] + auth + rest[end:]
	}
	if q := strings.Index(s, "?"); q >= 0 {
		frag := ""
		query := s[q+1:]
		if h := strings.Index(query, "#"); h >= 0 {
			query, frag = query[:h], query[h:]
		}
		parts := strings.Split(query, "&")
		for i, part := range parts {
			k, _, ok := strings.Cut(part, "=")
			if ok && IsSecretParam(k) {
				parts[i] = k + "=" + redactedValue
			}
		}
		s = s[:q+1] + strings.Join(parts, "&") + frag
	}
	return s
}
