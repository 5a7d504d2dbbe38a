package main

// Litestream's older way to name a replica: type plus path (file), bucket
// (s3, gs, abs), host (sftp) or webdav-url, turned into the URL every
// command opens.

import (
	"fmt"
	"net/url"
	"strings"
)

// ReplicaURL returns the replica's URL: `url:` as given, or one built from
// Litestream's older form: `type:` plus `path:` (file), `bucket:` (s3, gs,
// abs; with `account-name:` for abs), `host:` (sftp, with `user:`) or
// `webdav-url:` (webdav). A nats:// URL without a bucket gets `bucket:` as
// its path. Credentials never go into the URL; see Replica.
func (rc *ReplicaConfig) ReplicaURL() (string, error) {
	if rc.URL != "" {
		if rc.Path != "" {
			return "", fmt.Errorf("cannot specify both 'url' and 'path'")
		}
		if !isURL(rc.URL) {
			return "", fmt.Errorf("url %q is not a URL (expected scheme://...)", redactURL(rc.URL))
		}
		if rc.Bucket != "" && isNATSWithoutBucket(rc.URL) {
			return withBucketPath(rc.URL, rc.Bucket)
		}
		return rc.URL, nil
	}
	typ := rc.Type
	if typ == "" {
		typ = "file"
	}
	rel := "/" + strings.TrimPrefix(rc.Path, "/")
	switch typ {
	case "file":
		if rc.Path == "" {
			return "", fmt.Errorf("file replica needs 'url' or 'path'")
		}
		p, err := expandPath(rc.Path)
		if err != nil {
			return "", err
		}
		return fileURL(p), nil
	case "s3", "gs", "abs":
		if rc.Bucket == "" {
			return "", fmt.Errorf("%s replica needs 'url' or 'bucket'", typ)
		}
		u := url.URL{Scheme: typ, Host: rc.Bucket, Path: rel}
		if typ == "abs" && rc.AccountName != "" {
			u.User = url.User(rc.AccountName) // abs://ACCOUNT@CONTAINER/PATH
		}
		return u.String(), nil
	case "sftp":
		if rc.Host == "" {
			return "", fmt.Errorf("sftp replica needs 'url' or 'host'")
		}
		u := url.URL{Scheme: "sftp", Host: rc.Host, Path: rel}
		if rc.User != "" {
			u.User = url.User(rc.User)
		}
		return u.String(), nil
	case "webdav":
		if rc.WebDAVURL == "" {
			return "", fmt.Errorf("webdav replica needs 'url' or 'webdav-url'")
		}
		w, err := url.Parse(rc.WebDAVURL)
		if err != nil || w.Host == "" {
			return "", fmt.Errorf("webdav-url %q: want http://host[:port][/path] or https://...", redactURL(rc.WebDAVURL))
		}
		switch strings.ToLower(w.Scheme) {
		case "http":
			w.Scheme = "webdav"
		case "https":
			w.Scheme = "webdavs"
		default:
			return "", fmt.Errorf("webdav-url %q: want an http:// or https:// URL", redactURL(rc.WebDAVURL))
		}
		// The replica path is inside the server's base path, as in Litestream.
		w.Path = strings.TrimSuffix(w.Path, "/") + rel
		w.RawPath = ""
		return w.String(), nil
	default:
		return "", fmt.Errorf("replica type %q needs 'url' (only file, s3, gs, abs, sftp and webdav replicas can be given as type and location keys)", typ)
	}
}
