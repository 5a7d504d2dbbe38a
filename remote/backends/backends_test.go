package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
		{"webdav://h/x?skip-verify=maybe", []string{"skip-verify"}, false},
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

// TestOpenConfig: what each backend's configuration holds after Open, from
// the URL and from Options (which win), per backend.
func TestOpenConfig(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no known_hosts
	for _, env := range []string{"LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "LITESTREAM_AZURE_ACCOUNT_KEY", "LITESTREAM_AZURE_SAS_TOKEN"} {
		t.Setenv(env, "")
	}
	const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for _, tt := range []struct {
		raw  string
		opts Options
		want string
	}{
		{"nats://127.0.0.1:4222/bucket/app", Options{}, "nats url=nats://127.0.0.1:4222 bucket=bucket path=app user= password="},
		{"nats://127.0.0.1:4222/bucket", Options{}, "nats url=nats://127.0.0.1:4222 bucket=bucket path= user= password="},
		{"nats://u:pw@host:4222/b/x/y", Options{}, "nats url=nats://host:4222 bucket=b path=x/y user=u password=pw"},
		{"nats://host/x/y", Options{Bucket: "cfg", User: "o", Password: "opw", TLS: true}, "nats url=tls://host bucket=cfg path=x/y user=o password=opw"},

		{"webdav://127.0.0.1:8080/backups/app", Options{}, "webdav url=http://127.0.0.1:8080 path=backups/app user= password= skip-verify=false"},
		{"webdavs://u:pw@dav.example.com/x?skip-verify=true", Options{}, "webdav url=https://dav.example.com path=x user=u password=pw skip-verify=true"},
		{"webdavs://dav.example.com/x", Options{User: "o", Password: "opw", SkipVerify: true}, "webdav url=https://dav.example.com path=x user=o password=opw skip-verify=true"},

		{"sftp://u:pw@127.0.0.1:2222/backups/app?host-key=" + strings.ReplaceAll(hostKey, " ", "%20"), Options{},
			"sftp host=127.0.0.1:2222 user=u password=pw path=backups/app host-key=" + hostKey + " insecure=false"},
		{"sftp://u@h/x?insecure-ignore-host-key=true", Options{Password: "opw"}, "sftp host=h user=u password=opw path=x host-key= insecure=true"},
		{"sftp://h/x", Options{User: "o", Password: "opw", HostKey: hostKey}, "sftp host=h user=o password=opw path=x host-key=" + hostKey + " insecure=false"},

		{"gs://my-bucket/backups/app?endpoint=http://127.0.0.1:4443/storage/v1/", Options{}, "gs bucket=my-bucket path=backups/app endpoint=http://127.0.0.1:4443/storage/v1/"},
		{"gs://my-bucket/x", Options{Bucket: "other", Path: "y"}, "gs bucket=other path=y endpoint="},

		{"s3://bucket/app", Options{}, "s3 bucket=bucket path=app region= endpoint= key= secret= path-style=<nil>"},
		{"s3://bucket/app?endpoint=127.0.0.1:9000&region=eu-west-1", Options{}, "s3 bucket=bucket path=app region=eu-west-1 endpoint=http://127.0.0.1:9000 key= secret= path-style=<nil>"},
		{"s3://bucket/app?endpoint=https://r2.example.com&forcePathStyle=false", Options{}, "s3 bucket=bucket path=app region= endpoint=https://r2.example.com key= secret= path-style=false"},
		{"s3://bucket/app", Options{Endpoint: "minio.example.com", AccessKeyID: "AK", SecretAccessKey: "SK", Region: "r"},
			"s3 bucket=bucket path=app region=r endpoint=https://minio.example.com key=AK secret=SK path-style=<nil>"},

		// Litestream's form: the user part is the account.
		{"abs://myaccount@mycontainer/app", Options{}, "abs account=myaccount container=mycontainer path=app endpoint=https://myaccount.blob.core.windows.net/ key="},
		{"abs://c/app?endpoint=http://127.0.0.1:10000/devstoreaccount1", Options{AccountName: "devstoreaccount1", AccountKey: "k3y"},
			"abs account=devstoreaccount1 container=c path=app endpoint=http://127.0.0.1:10000/devstoreaccount1 key=k3y"},
		{"abs://a@c/app", Options{Bucket: "cfg-container"}, "abs account=a container=cfg-container path=app endpoint=https://a.blob.core.windows.net/ key="},
	} {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := OpenWithOptions(t.Context(), tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(c); got != tt.want {
				t.Fatalf("config\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// describe prints the settings of c that TestOpenConfig checks, after its
// Type() (so that a client of the wrong type or name shows).
func describe(c remote.Client) string {
	switch c := c.(type) {
	case *nats.Client:
		cfg := c.Config()
		return fmt.Sprintf("%s url=%s bucket=%s path=%s user=%s password=%s", c.Type(), cfg.URL, cfg.Bucket, cfg.Path, cfg.Username, cfg.Password)
	case *webdav.Client:
		cfg := c.Config()
		return fmt.Sprintf("%s url=%s path=%s user=%s password=%s skip-verify=%v", c.Type(), cfg.URL, cfg.Path, cfg.Username, cfg.Password, cfg.SkipVerify)
	case *sftp.Client:
		cfg := c.Config()
		return fmt.Sprintf("%s host=%s user=%s password=%s path=%s host-key=%s insecure=%v", c.Type(), cfg.Host, cfg.User, cfg.Password, cfg.Path, cfg.HostKey, cfg.InsecureIgnoreHostKey)
	case *gcs.Client:
		cfg := c.Config()
		return fmt.Sprintf("%s bucket=%s path=%s endpoint=%s", c.Type(), cfg.Bucket, cfg.Path, cfg.Endpoint)
	case *s3.Client:
		cfg := c.Config()
		pathStyle := "<nil>"
		if cfg.ForcePathStyle != nil {
			pathStyle = fmt.Sprint(*cfg.ForcePathStyle)
		}
		return fmt.Sprintf("%s bucket=%s path=%s region=%s endpoint=%s key=%s secret=%s path-style=%s", c.Type(), cfg.Bucket, cfg.Path, cfg.Region, cfg.Endpoint, cfg.AccessKeyID, cfg.SecretAccessKey, pathStyle)
	case *abs.Client:
		cfg := c.Config()
		return fmt.Sprintf("%s account=%s container=%s path=%s endpoint=%s key=%s", c.Type(), cfg.AccountName, cfg.Container, cfg.Path, cfg.Endpoint, cfg.AccountKey)
	}
	return fmt.Sprintf("%T %s", c, c.Type())
}

// TestOpenEnv: Litestream's environment variables give the credentials
// that neither the URL nor Options do.
func TestOpenEnv(t *testing.T) {
	t.Setenv("LITESTREAM_ACCESS_KEY_ID", "envkey")
	t.Setenv("LITESTREAM_SECRET_ACCESS_KEY", "envsecret")
	t.Setenv("LITESTREAM_AZURE_ACCOUNT_KEY", "envkey")
	t.Setenv("LITESTREAM_AZURE_SAS_TOKEN", "")
	for raw, want := range map[string]string{
		"s3://b/p":    "s3 bucket=b path=p region= endpoint= key=envkey secret=envsecret path-style=<nil>",
		"abs://a@c/p": "abs account=a container=c path=p endpoint=https://a.blob.core.windows.net/ key=envkey",
	} {
		c, err := Open(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(c); got != want {
			t.Errorf("%s: config\n got %s\nwant %s", raw, got, want)
		}
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
