package backends

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/abs"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/gcs"
	"github.com/litestream-go/litestream/remote/nats"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/s3"
	"github.com/litestream-go/litestream/remote/sftp"
	"github.com/litestream-go/litestream/remote/webdav"
)

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	for _, raw := range []string{dir, "file://" + dir, "file://" + dir + "/"} {
		t.Run(raw, func(t *testing.T) {
			c, err := Open(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			fc, ok := c.(*file.Client)
			if !ok || c.Type() != "file" || fc.Root() != filepath.Clean(dir) {
				t.Fatalf("got %T %q", c, c.Type())
			}
		})
	}

	// A client from Open really writes where the URL says.
	c, err := Open(t.Context(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	infos, err := file.New(dir).LTXFiles(t.Context(), 0, 0)
	if err != nil || len(infos) != 1 {
		t.Fatalf("got %d files, %v", len(infos), err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/known_hosts: the sftp case fails on host key verification
	tests := []struct {
		raw         string
		want        []string
		unsupported bool
	}{
		{"ftp://host/x", []string{`unknown replica URL scheme "ftp"`, "this build supports: file, s3, gs, abs, sftp, nats, webdav, webdavs"}, false},
		{"s3://bucket/db?skip-verify=maybe&secret-access-key=hunter2", []string{"skip-verify", "secret-access-key=xxxxx"}, false},
		{"abs://container/db", []string{"account name is required"}, false},
		{"sftp://u:hunter2@127.0.0.1:22/db", []string{"cannot verify the host key", "u:xxxxx@"}, false},
		{"file://host/x", []string{`has host "host"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := Open(t.Context(), tt.raw)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks a secret", err)
			}
			if errors.Is(err, errors.ErrUnsupported) != tt.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %v, want %v", !tt.unsupported, tt.unsupported)
			}
		})
	}
	if _, err := Open(t.Context(), "ftp://x/y"); !errors.Is(err, remote.ErrUnknownScheme) {
		t.Errorf("unknown scheme error does not wrap ErrUnknownScheme: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Open(ctx, t.TempDir()); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: got %v", err)
	}
}

func TestOpenNATS(t *testing.T) {
	tests := []struct {
		raw                     string
		opts                    Options
		url, bucket, path, user string
		password                string
	}{
		{raw: "nats://127.0.0.1:4222/bucket/app", url: "nats://127.0.0.1:4222", bucket: "bucket", path: "app"},
		{raw: "nats://127.0.0.1:4222/bucket", url: "nats://127.0.0.1:4222", bucket: "bucket", path: ""},
		{raw: "nats://u:pw@host:4222/b/x/y", url: "nats://host:4222", bucket: "b", path: "x/y", user: "u", password: "pw"},
		{raw: "nats://host/x/y", opts: Options{Bucket: "cfg", User: "o", Password: "opw", TLS: true}, url: "tls://host", bucket: "cfg", path: "x/y", user: "o", password: "opw"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			nc, ok := c.(*nats.Client)
			if !ok || c.Type() != "nats" {
				t.Fatalf("got %T", c)
			}
			cfg := nc.Config()
			if cfg.URL != tt.url || cfg.Bucket != tt.bucket || cfg.Path != tt.path || cfg.Username != tt.user || cfg.Password != tt.password {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}

func TestOpenWebDAV(t *testing.T) {
	tests := []struct {
		raw                     string
		opts                    Options
		url, path, user, passwd string
		skip                    bool
	}{
		{raw: "webdav://127.0.0.1:8080/backups/app", url: "http://127.0.0.1:8080", path: "backups/app"},
		{raw: "webdavs://u:pw@dav.example.com/x?skip-verify=true", url: "https://dav.example.com", path: "x", user: "u", passwd: "pw", skip: true},
		{raw: "webdavs://dav.example.com/x", opts: Options{User: "o", Password: "opw", SkipVerify: true}, url: "https://dav.example.com", path: "x", user: "o", passwd: "opw", skip: true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			wc, ok := c.(*webdav.Client)
			if !ok || c.Type() != "webdav" {
				t.Fatalf("got %T", c)
			}
			cfg := wc.Config()
			if cfg.URL != tt.url || cfg.Path != tt.path || cfg.Username != tt.user || cfg.Password != tt.passwd || cfg.SkipVerify != tt.skip {
				t.Fatalf("config URL=%s path=%s user=%s skip=%v", cfg.URL, cfg.Path, cfg.Username, cfg.SkipVerify)
			}
		})
	}
	if _, err := Open(t.Context(), "webdav://h/x?skip-verify=maybe"); err == nil || !strings.Contains(err.Error(), "skip-verify") {
		t.Fatalf("bad bool: %v", err)
	}
}

func TestOpenSFTP(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no known_hosts
	const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	tests := []struct {
		raw                      string
		opts                     Options
		host, user, pw, path, hk string
		insecure                 bool
	}{
		{raw: "sftp://u:pw@127.0.0.1:2222/backups/app?host-key=" + strings.ReplaceAll(hostKey, " ", "%20"), host: "127.0.0.1:2222", user: "u", pw: "pw", path: "backups/app", hk: hostKey},
		{raw: "sftp://u@h/x?insecure-ignore-host-key=true", host: "h", user: "u", path: "x", insecure: true, opts: Options{Password: "opw"}, pw: "opw"},
		{raw: "sftp://h/x", opts: Options{User: "o", Password: "opw", HostKey: hostKey}, host: "h", user: "o", pw: "opw", path: "x", hk: hostKey},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			sc, ok := c.(*sftp.Client)
			if !ok || c.Type() != "sftp" {
				t.Fatalf("got %T", c)
			}
			cfg := sc.Config()
			if cfg.Host != tt.host || cfg.User != tt.user || cfg.Password != tt.pw || cfg.Path != tt.path || cfg.HostKey != tt.hk || cfg.InsecureIgnoreHostKey != tt.insecure {
				t.Fatalf("config host=%s user=%s path=%s hostkey=%q insecure=%v", cfg.Host, cfg.User, cfg.Path, cfg.HostKey, cfg.InsecureIgnoreHostKey)
			}
		})
	}
}

func TestOpenGCS(t *testing.T) {
	c, err := Open(t.Context(), "gs://my-bucket/backups/app?endpoint=http://127.0.0.1:4443/storage/v1/")
	if err != nil {
		t.Fatal(err)
	}
	gc, ok := c.(*gcs.Client)
	if !ok || c.Type() != "gs" {
		t.Fatalf("got %T", c)
	}
	if cfg := gc.Config(); cfg.Bucket != "my-bucket" || cfg.Path != "backups/app" || cfg.Endpoint != "http://127.0.0.1:4443/storage/v1/" {
		t.Fatalf("config %+v", cfg)
	}
	c, err = OpenWithOptions(t.Context(), "gs://my-bucket/x", Options{Bucket: "other", Path: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.(*gcs.Client).Config(); cfg.Bucket != "other" || cfg.Path != "y" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestOpenS3(t *testing.T) {
	t.Setenv("LITESTREAM_ACCESS_KEY_ID", "")
	t.Setenv("LITESTREAM_SECRET_ACCESS_KEY", "")
	f := false
	tests := []struct {
		raw                      string
		opts                     Options
		bucket, path, region, ep string
		pathStyle                *bool
		key, secret              string
	}{
		{raw: "s3://bucket/app", bucket: "bucket", path: "app"},
		{raw: "s3://bucket/app?endpoint=127.0.0.1:9000&region=eu-west-1", bucket: "bucket", path: "app", region: "eu-west-1", ep: "http://127.0.0.1:9000"},
		{raw: "s3://bucket/app?endpoint=https://r2.example.com&forcePathStyle=false", bucket: "bucket", path: "app", ep: "https://r2.example.com", pathStyle: &f},
		{raw: "s3://bucket/app", opts: Options{Endpoint: "minio.example.com", AccessKeyID: "AK", SecretAccessKey: "SK", Region: "r"},
			bucket: "bucket", path: "app", region: "r", ep: "https://minio.example.com", key: "AK", secret: "SK"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			sc, ok := c.(*s3.Client)
			if !ok || c.Type() != "s3" {
				t.Fatalf("got %T", c)
			}
			cfg := sc.Config()
			if cfg.Bucket != tt.bucket || cfg.Path != tt.path || cfg.Region != tt.region || cfg.Endpoint != tt.ep ||
				cfg.AccessKeyID != tt.key || cfg.SecretAccessKey != tt.secret ||
				(cfg.ForcePathStyle == nil) != (tt.pathStyle == nil) || (cfg.ForcePathStyle != nil && *cfg.ForcePathStyle != *tt.pathStyle) {
				t.Fatalf("config bucket=%s path=%s region=%s endpoint=%s key=%s pathStyle=%v", cfg.Bucket, cfg.Path, cfg.Region, cfg.Endpoint, cfg.AccessKeyID, cfg.ForcePathStyle)
			}
		})
	}
	t.Setenv("LITESTREAM_ACCESS_KEY_ID", "envkey")
	t.Setenv("LITESTREAM_SECRET_ACCESS_KEY", "envsecret")
	c, err := Open(t.Context(), "s3://b/p")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.(*s3.Client).Config(); cfg.AccessKeyID != "envkey" || cfg.SecretAccessKey != "envsecret" {
		t.Fatalf("LITESTREAM_* credentials not used")
	}
}

// TestOpenS3Compat: Litestream's S3 compatibility settings from options
// and URL query parameters (camelCase or kebab-case), options winning, and
// its provider defaults.
func TestOpenS3Compat(t *testing.T) {
	tr, f := true, false
	key := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	for _, tt := range []struct {
		raw  string
		opts Options
		want s3.Compat
	}{
		{"s3://b/p", Options{}, s3.Compat{}},
		{"s3://b/p?signPayload=false&sign-accept-encoding=false&requireContentMD5=false&put-object-content-md5=true&storageClass=STANDARD_IA",
			Options{}, s3.Compat{UnsignedPayload: true, NoSignAcceptEncoding: true, NoDeleteContentMD5: true, PutContentMD5: true, StorageClass: "STANDARD_IA"}},
		{"s3://b/p?signPayload=false&storage-class=X", Options{SignPayload: &tr, StorageClass: "Y", SSEKMSKeyID: "k"},
			s3.Compat{StorageClass: "Y", SSEKMSKeyID: "k"}},
		{"s3://b/p?sse-customer-key=" + key, Options{PutObjectContentMD5: &f}, s3.Compat{SSECustomerKey: key, SSECustomerAlgorithm: "AES256"}},
		{"s3://b/p?endpoint=https://fly.storage.tigris.dev", Options{}, s3.Compat{NoDeleteContentMD5: true}},
		{"s3://b/p", Options{Endpoint: "https://storage.googleapis.com"}, s3.Compat{NoSignAcceptEncoding: true}},
	} {
		c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.raw, err)
		}
		if got := c.(*s3.Client).Config().Compat; got != tt.want {
			t.Errorf("%s %+v: compat %+v, want %+v", tt.raw, tt.opts, got, tt.want)
		}
	}
	if _, err := Open(t.Context(), "s3://b/p?signPayload=maybe"); err == nil {
		t.Error("signPayload=maybe accepted")
	}
}

func TestOpenABS(t *testing.T) {
	t.Setenv("LITESTREAM_AZURE_ACCOUNT_KEY", "")
	t.Setenv("LITESTREAM_AZURE_SAS_TOKEN", "")
	tests := []struct {
		raw                               string
		opts                              Options
		account, container, path, ep, key string
	}{
		// Litestream's form: the user part is the account.
		{raw: "abs://myaccount@mycontainer/app", account: "myaccount", container: "mycontainer", path: "app", ep: "https://myaccount.blob.core.windows.net/"},
		{raw: "abs://c/app?endpoint=http://127.0.0.1:10000/devstoreaccount1", opts: Options{AccountName: "devstoreaccount1", AccountKey: "k3y"},
			account: "devstoreaccount1", container: "c", path: "app", ep: "http://127.0.0.1:10000/devstoreaccount1", key: "k3y"},
		{raw: "abs://a@c/app", opts: Options{Bucket: "cfg-container"}, account: "a", container: "cfg-container", path: "app", ep: "https://a.blob.core.windows.net/"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			ac, ok := c.(*abs.Client)
			if !ok || c.Type() != "abs" {
				t.Fatalf("got %T", c)
			}
			cfg := ac.Config()
			if cfg.AccountName != tt.account || cfg.Container != tt.container || cfg.Path != tt.path || cfg.Endpoint != tt.ep || cfg.AccountKey != tt.key {
				t.Fatalf("config account=%s container=%s path=%s endpoint=%s", cfg.AccountName, cfg.Container, cfg.Path, cfg.Endpoint)
			}
		})
	}
	t.Setenv("LITESTREAM_AZURE_ACCOUNT_KEY", "envkey")
	c, err := Open(t.Context(), "abs://a@c/p")
	if err != nil {
		t.Fatal(err)
	}
	if c.(*abs.Client).Config().AccountKey != "envkey" {
		t.Fatal("LITESTREAM_AZURE_ACCOUNT_KEY not used")
	}
}
