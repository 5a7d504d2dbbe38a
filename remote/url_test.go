package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		raw      string
		scheme   string
		host     string
		user     string
		password string // "" and hasPW false means none
		hasPW    bool
		path     string
		query    map[string]string
		str      string // expected String()
	}{
		{raw: "/var/lib/replica", scheme: "file", path: "/var/lib/replica", str: "file:///var/lib/replica"},
		{raw: "/var/lib/replica/", scheme: "file", path: "/var/lib/replica", str: "file:///var/lib/replica"},
		{raw: "replica/db", scheme: "file", path: filepath.Join(wd, "replica/db"), str: "file://" + filepath.Join(wd, "replica/db")},
		{raw: "./a/../b", scheme: "file", path: filepath.Join(wd, "b"), str: "file://" + filepath.Join(wd, "b")},
		{raw: "~/backups/db", scheme: "file", path: filepath.Join(home, "backups/db"), str: "file://" + filepath.Join(home, "backups/db")},
		{raw: "file:///var/lib/replica", scheme: "file", path: "/var/lib/replica", str: "file:///var/lib/replica"},
		{raw: "FILE:///x/y/", scheme: "file", path: "/x/y", str: "file:///x/y"},
		{raw: "file://localhost/x", scheme: "file", path: "/x", str: "file:///x"},
		{raw: "file:/x/y", scheme: "file", path: "/x/y", str: "file:///x/y"},
		{raw: "file:///with%20space/db", scheme: "file", path: "/with space/db", str: "file:///with%20space/db"},
		{
			raw: "s3://my-bucket/db/path?endpoint=http://127.0.0.1:9000&region=us-east-1", scheme: "s3", host: "my-bucket", path: "db/path",
			query: map[string]string{"endpoint": "http://127.0.0.1:9000", "region": "us-east-1"},
			str:   "s3://my-bucket/db/path?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1",
		},
		{raw: "s3://bucket", scheme: "s3", host: "bucket", path: "", str: "s3://bucket"},
		{raw: "s3://bucket/", scheme: "s3", host: "bucket", path: "", str: "s3://bucket"},
		{raw: "s3://bucket//a//b/", scheme: "s3", host: "bucket", path: "a/b", str: "s3://bucket/a/b"},
		{
			raw: "s3://bucket/db?access-key-id=AKIA&secret-access-key=hunter2", scheme: "s3", host: "bucket", path: "db",
			query: map[string]string{"access-key-id": "AKIA", "secret-access-key": "hunter2"},
			str:   "s3://bucket/db?access-key-id=xxxxx&secret-access-key=xxxxx",
		},
		{raw: "gs://bucket/p", scheme: "gs", host: "bucket", path: "p", str: "gs://bucket/p"},
		{raw: "abs://account@container/p/q", scheme: "abs", host: "container", user: "account", path: "p/q", str: "abs://account@container/p/q"},
		{raw: "abs://container/p", scheme: "abs", host: "container", path: "p", str: "abs://container/p"},
		{raw: "sftp://alice:s3cret@127.0.0.1:2222/home/alice/db", scheme: "sftp", host: "127.0.0.1:2222", user: "alice", password: "s3cret", hasPW: true, path: "home/alice/db", str: "sftp://alice:xxxxx@127.0.0.1:2222/home/alice/db"},
		{raw: "sftp://bob@host/db", scheme: "sftp", host: "host", user: "bob", path: "db", str: "sftp://bob@host/db"},
		{raw: "nats://127.0.0.1:4222/bucket/path", scheme: "nats", host: "127.0.0.1:4222", path: "bucket/path", str: "nats://127.0.0.1:4222/bucket/path"},
		{raw: "webdav://127.0.0.1:8080/dav/db", scheme: "webdav", host: "127.0.0.1:8080", path: "dav/db", str: "webdav://127.0.0.1:8080/dav/db"},
		{raw: "webdavs://u:p@dav.example.com/db", scheme: "webdavs", host: "dav.example.com", user: "u", password: "p", hasPW: true, path: "db", str: "webdavs://u:xxxxx@dav.example.com/db"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if u.Scheme != tt.scheme || u.Host != tt.host || u.User != tt.user || u.Path != tt.path {
				t.Fatalf("got scheme=%q host=%q user=%q path=%q, want %q %q %q %q",
					u.Scheme, u.Host, u.User, u.Path, tt.scheme, tt.host, tt.user, tt.path)
			}
			if pw, ok := u.Password(); pw != tt.password || ok != tt.hasPW {
				t.Fatalf("password = %q,%v; want %q,%v", pw, ok, tt.password, tt.hasPW)
			}
			q := u.Query()
			if len(q) != len(tt.query) {
				t.Fatalf("query = %v, want %v", q, tt.query)
			}
			for k, v := range tt.query {
				if got := u.QueryValue(k); got != v {
					t.Fatalf("query %s = %q, want %q", k, got, v)
				}
			}
			if got := u.String(); got != tt.str {
				t.Fatalf("String() = %q, want %q", got, tt.str)
			}
			// The redacted form, if it hides nothing, parses back to the same URL.
			if !strings.Contains(tt.str, redactedValue) {
				u2, err := ParseURL(u.String())
				if err != nil {
					t.Fatalf("reparse %q: %v", u.String(), err)
				}
				if u2.String() != u.String() || u2.Path != u.Path {
					t.Fatalf("reparse: %q path %q, want %q path %q", u2, u2.Path, u, u.Path)
				}
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		raw  string
		want []string // substrings of the error
	}{
		{"", []string{"empty"}},
		{"   ", []string{"empty"}},
		{"ftp://host/x", []string{`"ftp://host/x"`, `unknown replica URL scheme "ftp"`, "file, s3, gs, abs, sftp, nats, webdav, webdavs"}},
		{"file://host/x", []string{`"file://host/x"`, `has host "host"`}},
		{"file://", []string{"needs a directory path"}},
		{"file:///", []string{"needs a directory path"}},
		{"file:relative/x", []string{"expected file://"}},
		{"file://u:pw@/x", []string{"cannot have a user", "u:xxxxx@"}},
		{"s3:///path", []string{"missing bucket"}},
		{"gs://", []string{"missing bucket"}},
		{"abs:///p", []string{"missing container"}},
		{"sftp:///p", []string{"missing host"}},
		{"webdav:///p", []string{"missing host"}},
		{"nats://127.0.0.1:4222", []string{"missing object store bucket"}},
		{"nats://127.0.0.1:4222/", []string{"missing object store bucket"}},
		{"s3://bucket/a#b", []string{"fragment", "%23"}},
		{"sftp://u:pw@host:notaport/x", []string{"sftp://u:xxxxx@host:notaport/x", "invalid port"}},
		{"s3://bucket/x?secret-access-key=hunter2&endpoint=%zz", []string{"secret-access-key=xxxxx", "endpoint=%zz"}},
		{"://nothing", []string{"missing protocol scheme"}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := ParseURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %v, want error", tt.raw, u)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			for _, secret := range []string{"hunter2", ":pw@"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks %q", msg, secret)
				}
			}
		})
	}
	if _, err := ParseURL("ftp://x/y"); !errors.Is(err, ErrUnknownScheme) {
		t.Fatalf("errors.Is(%v, ErrUnknownScheme) = false", err)
	}
}

// TestURLNoLeak checks every way a URL is commonly printed or encoded.
func TestURLNoLeak(t *testing.T) {
	u, err := ParseURL("sftp://alice:hunter2@127.0.0.1:22/db?token=hunter2&x=1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]string{
		"%v":   fmt.Sprintf("%v", u),
		"%+v":  fmt.Sprintf("%+v", u),
		"%s":   fmt.Sprintf("%s", *u),
		"%+v*": fmt.Sprintf("%+v", *u),
		"json": string(b),
		"log":  u.LogValue().String(),
	}
	for name, out := range outs {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	if want := "sftp://alice:xxxxx@127.0.0.1:22/db?token=xxxxx&x=1"; outs["%v"] != want {
		t.Errorf("%%v = %q, want %q", outs["%v"], want)
	}
	if pw, _ := u.Password(); pw != "hunter2" {
		t.Errorf("Password() = %q", pw)
	}
	// Query returns a copy.
	u.Query().Set("x", "2")
	if u.QueryValue("x") != "1" {
		t.Errorf("Query() is not a copy")
	}
}

// TestIsSecretParam: the one list of secret parameters. Before it, remote.URL
// hid fewer names than the CLI (a NATS seed, jwt or creds value showed in a
// redacted URL).
func TestIsSecretParam(t *testing.T) {
	for _, k := range []string{"secret-access-key", "access-key-id", "AccessKeyID", "sse-customer-key", "sseCustomerKey",
		"sse-kms-key-id", "password", "passwd", "pass", "sas-token", "sig", "signature", "token", "jwt", "seed", "nkey",
		"creds", "credentials", "account-key", "X-Amz-Credential"} {
		if !IsSecretParam(k) {
			t.Errorf("IsSecretParam(%q) = false, want true", k)
		}
	}
	for _, k := range []string{"endpoint", "region", "force-path-style", "skip-verify", "concurrent-writes", "x", "bucket", "level", "poll_interval", "cache_size"} {
		if IsSecretParam(k) {
			t.Errorf("IsSecretParam(%q) = true, want false", k)
		}
	}
	u, err := ParseURL("nats://127.0.0.1:4222/bucket/db?seed=SUAMSEED&jwt=eyJWT&creds=/x/user.creds&token=tok1&endpoint=e")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.Redacted(), "nats://127.0.0.1:4222/bucket/db?creds=xxxxx&endpoint=e&jwt=xxxxx&seed=xxxxx&token=xxxxx"; got != want {
		t.Errorf("Redacted() = %q, want %q", got, want)
	}
}
