package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/litestream-go/litestream/remote"
)

// urlRE matches a URL scheme prefix. A Windows drive letter ("C:\") does not
// match because "://" is required.
var urlRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// isURL reports whether s is a replica URL rather than a file path.
func isURL(s string) bool { return urlRE.MatchString(s) }

// fileURL returns the file:// URL of an absolute path.
func fileURL(abs string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// replicaArg turns a replica argument into a URL: a URL is kept as is, a
// plain path becomes the file:// URL of its absolute path.
func replicaArg(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty replica URL")
	}
	if isURL(s) {
		return s, nil
	}
	p, err := expandPath(s)
	if err != nil {
		return "", err
	}
	return fileURL(p), nil
}

// redactURL returns rawURL with its password and secret-looking query values
// hidden, for logs and messages: remote.URL's redaction when rawURL is a
// replica URL it accepts, else the same treatment by net/url (so that an
// unknown scheme still shows legibly). Input that does not parse at all is
// reduced to its scheme so nothing secret can leak from it.
func redactURL(rawURL string) string {
	if u, err := remote.ParseURL(rawURL); err == nil {
		return u.Redacted()
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		if i := strings.Index(rawURL, "://"); i > 0 {
			return rawURL[:i+3] + redacted
		}
		return redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if remote.IsSecretParam(k) {
				q[k] = []string{redacted}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redacted replaces secrets in printed URLs (the same marker remote.URL uses).
const redacted = "xxxxx"

// urlSecrets returns the secret values in rawURL (password, secret-looking
// query values) that are long enough to be replaced safely in a message.
func urlSecrets(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if p, ok := u.User.Password(); ok && len(p) >= 4 {
			out = append(out, p)
		}
	}
	for k, vs := range u.Query() {
		if !remote.IsSecretParam(k) {
			continue
		}
		for _, v := range vs {
			if len(v) >= 4 {
				out = append(out, v)
			}
		}
	}
	return out
}
