package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/remote/backends"
	"github.com/litestream-go/litestream/remote/s3"
	"github.com/litestream-go/litestream/remote/sftp"
)

func ptr[T any](v T) *T { return &v }

// TestReplicaOptions maps configurations to the URL and backends.Options
// the CLI opens, for every backend, the legacy type/location form and the
// global defaults.
func TestReplicaOptions(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string // one database; dbs[0] is checked
		env      map[string]string
		wantURL  string
		wantOpts backends.Options
		wantErr  string
		openErr  string // expected from the backend (files named do not exist here)
	}{
		{
			name: "s3 url and every s3 key",
			yaml: `
dbs:
  - path: /a.db
    replica:
      url: s3://bkt/db/a
      access-key-id: AKIAEXAMPLE
      secret-access-key: s3cr3t-key
      region: eu-west-1
      endpoint: minio.internal:9000
      force-path-style: true
      skip-verify: true
      part-size: 10MiB
      concurrency: 3
`,
			wantURL: "s3://bkt/db/a",
			wantOpts: backends.Options{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "s3cr3t-key", Region: "eu-west-1",
				Endpoint: "minio.internal:9000", ForcePathStyle: ptr(true), SkipVerify: true, PartSize: 10 << 20, Concurrency: 3},
		},
		{
			name: "global credentials, replica overrides region",
			yaml: `
access-key-id: GLOBALKEY
secret-access-key: global-secret
region: us-west-2
force-path-style: false
dbs:
  - path: /a.db
    replica:
      url: s3://bkt/a
      region: us-east-1
`,
			wantURL:  "s3://bkt/a",
			wantOpts: backends.Options{AccessKeyID: "GLOBALKEY", SecretAccessKey: "global-secret", Region: "us-east-1", ForcePathStyle: ptr(false)},
		},
		{
			name: "credentials from the environment through ${VAR}",
			yaml: `
dbs:
  - path: /a.db
    replica:
      url: s3://bkt/a
      access-key-id: ${KEY_ID}
      secret-access-key: ${SECRET}
`,
			env:      map[string]string{"KEY_ID": "AKIAENV", "SECRET": "env-secret"},
			wantURL:  "s3://bkt/a",
			wantOpts: backends.Options{AccessKeyID: "AKIAENV", SecretAccessKey: "env-secret"},
		},
		{
			name: "legacy s3 type, bucket and path",
			yaml: `
dbs:
  - path: /a.db
    replicas:
      - type: s3
        bucket: bkt
        path: /db/a
        endpoint: https://s3.example.com
        region: auto
`,
			wantURL:  "s3://bkt/db/a",
			wantOpts: backends.Options{Endpoint: "https://s3.example.com", Region: "auto"},
		},
		{
			name: "legacy s3 with the global bucket",
			yaml: `
bucket: gbkt
access-key-id: GLOBALKEY
dbs:
  - path: /a.db
    replica: {type: s3, path: a}
`,
			wantURL:  "s3://gbkt/a",
			wantOpts: backends.Options{AccessKeyID: "GLOBALKEY"},
		},
		{
			name:     "a global bucket does not override a url",
			yaml:     "bucket: gbkt\ndbs:\n  - path: /a.db\n    replica: {url: 's3://own/a'}\n",
			wantURL:  "s3://own/a",
			wantOpts: backends.Options{},
		},
		{
			name:    "own bucket next to a url",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: 's3://own/a', bucket: other}\n",
			wantErr: "cannot specify both 'url' and 'bucket'",
		},
		{
			name: "gs url with an emulator endpoint",
			yaml: `
dbs:
  - path: /a.db
    replica: {url: 'gs://bkt/a', endpoint: 'http://127.0.0.1:4443'}
`,
			wantURL:  "gs://bkt/a",
			wantOpts: backends.Options{Endpoint: "http://127.0.0.1:4443"},
		},
		{
			// A global endpoint is S3's (Litestream's gs has no endpoint);
			// applied to gs it would turn authentication off.
			name:     "gs ignores a global endpoint",
			yaml:     "endpoint: https://s3.example.com\ndbs:\n  - path: /a.db\n    replica: {url: 'gs://bkt/a'}\n",
			wantURL:  "gs://bkt/a",
			wantOpts: backends.Options{},
		},
		{
			name: "abs url with key, SAS token and endpoint",
			yaml: `
dbs:
  - path: /a.db
    replica:
      url: abs://acct@container/db/a
      account-key: YWNjb3VudC1rZXk=
      sas-token: sv=2024&sig=abc123
      endpoint: http://127.0.0.1:10000/acct
`,
			wantURL:  "abs://acct@container/db/a",
			wantOpts: backends.Options{AccountKey: "YWNjb3VudC1rZXk=", SASToken: "sv=2024&sig=abc123", Endpoint: "http://127.0.0.1:10000/acct"},
		},
		{
			name: "legacy abs with account-name and bucket",
			yaml: `
account-name: acct
account-key: global-account-key
dbs:
  - path: /a.db
    replica: {type: abs, bucket: container, path: db/a}
`,
			wantURL:  "abs://acct@container/db/a",
			wantOpts: backends.Options{AccountName: "acct", AccountKey: "global-account-key"},
		},
		{
			name: "sftp url with password, key and host key",
			yaml: `
dbs:
  - path: /a.db
    replica:
      url: sftp://backup.example.com:2222/srv/a
      user: alice
      password: sftp-pass
      key-path: /etc/litestream/id_ed25519
      host-key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample
      timeout: 45s
`,
			wantURL: "sftp://backup.example.com:2222/srv/a",
			wantOpts: backends.Options{User: "alice", Password: "sftp-pass", KeyPath: "/etc/litestream/id_ed25519",
				HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample", Timeout: 45 * time.Second},
			openErr: "read private key: open /etc/litestream/id_ed25519",
		},
		{
			name: "legacy sftp with global host and user",
			yaml: `
host: backup.example.com:22
user: alice
password: global-pass
dbs:
  - path: /a.db
    replica: {type: sftp, path: backups/a, host-key: /etc/litestream/host.pub}
`,
			wantURL:  "sftp://alice@backup.example.com:22/backups/a",
			wantOpts: backends.Options{User: "alice", Password: "global-pass", HostKey: "/etc/litestream/host.pub"},
			openErr:  "open /etc/litestream/host.pub",
		},
		{
			name:    "own host next to a url",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: 'sftp://h/a', host: other}\n",
			wantErr: "cannot specify both 'url' and 'host'",
		},
		{
			name: "keys of other backends are not passed on",
			yaml: `
access-key-id: GLOBALKEY
secret-access-key: global-secret
token: nats-token
account-key: abs-key
dbs:
  - path: /a.db
    replica: {url: 'sftp://h/a', user: bob, host-key: /k.pub}
`,
			wantURL:  "sftp://h/a",
			wantOpts: backends.Options{User: "bob", HostKey: "/k.pub"},
			openErr:  "no credentials", // the global password-like keys are not sftp's
		},
		{
			name: "legacy webdav with webdav-url and its credentials",
			yaml: `
dbs:
  - path: /a.db
    replica:
      type: webdav
      webdav-url: https://dav.example.com/remote.php/dav/
      webdav-username: carol
      webdav-password: dav-pass
      path: backups/a
      skip-verify: true
`,
			wantURL:  "webdavs://dav.example.com/remote.php/dav/backups/a",
			wantOpts: backends.Options{User: "carol", Password: "dav-pass", SkipVerify: true},
		},
		{
			name:     "webdav url with user and password keys",
			yaml:     "dbs:\n  - path: /a.db\n    replica: {url: 'webdav://127.0.0.1:8080/a', user: carol, password: dav-pass, timeout: 5s}\n",
			wantURL:  "webdav://127.0.0.1:8080/a",
			wantOpts: backends.Options{User: "carol", Password: "dav-pass", Timeout: 5 * time.Second},
		},
		{
			name: "webdav takes only its own generic user, password and skip-verify",
			yaml: `
user: sftp-user
password: sftp-pass
skip-verify: true
webdav-username: carol
dbs:
  - path: /a.db
    replica: {url: 'webdavs://h/a'}
`,
			wantURL:  "webdavs://h/a",
			wantOpts: backends.Options{User: "carol"},
		},
		{
			name:    "own webdav-url next to a url",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: 'webdav://h/a', webdav-url: 'http://h'}\n",
			wantErr: "cannot specify both 'url' and 'webdav-url'",
		},
		{
			name: "nats url without a bucket, and every nats key",
			yaml: `
dbs:
  - path: /a.db
    replica:
      url: nats://127.0.0.1:4222
      bucket: backups
      username: dave
      password: nats-pass
      jwt: eyJ0eXAiOiJKV1QifQ
      seed: SUAEXAMPLESEED
      creds: /etc/nats/user.creds
      nkey: /etc/nats/user.nk
      token: nats-token
      tls: true
      root-cas: [/etc/nats/ca.pem]
      client-cert: /etc/nats/cert.pem
      client-key: /etc/nats/key.pem
      max-reconnects: 0
      reconnect-wait: 2s
      timeout: 10s
`,
			wantURL: "nats://127.0.0.1:4222/backups",
			wantOpts: backends.Options{User: "dave", Password: "nats-pass", JWT: "eyJ0eXAiOiJKV1QifQ", Seed: "SUAEXAMPLESEED",
				Creds: "/etc/nats/user.creds", NKey: "/etc/nats/user.nk", Token: "nats-token", TLS: true,
				RootCAs: []string{"/etc/nats/ca.pem"}, ClientCert: "/etc/nats/cert.pem", ClientKey: "/etc/nats/key.pem",
				MaxReconnects: ptr(0), ReconnectWait: 2 * time.Second, Timeout: 10 * time.Second},
		},
		{
			name:     "nats url with its bucket",
			yaml:     "token: tok1\ndbs:\n  - path: /a.db\n    replica: {url: 'nats://h:4222/bkt/db'}\n",
			wantURL:  "nats://h:4222/bkt/db",
			wantOpts: backends.Options{Token: "tok1"},
		},
		{
			name:    "nats url with a bucket and a bucket key",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {url: 'nats://h:4222/bkt', bucket: other}\n",
			wantErr: "cannot specify both 'url' and 'bucket'",
		},
		{
			name:    "nats needs a url",
			yaml:    "dbs:\n  - path: /a.db\n    replica: {type: nats, bucket: bkt}\n",
			wantErr: `replica type "nats" needs 'url'`,
		},
		{
			name:     "file replica takes no options",
			yaml:     "access-key-id: AKIA\ndbs:\n  - path: /a.db\n    replica: {url: 'file:///backups/a'}\n",
			wantURL:  "file:///backups/a",
			wantOpts: backends.Options{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tt.yaml), true, env(tt.env))
			if checkErr(t, err, tt.wantErr) {
				return
			}
			rc, err := cfg.DBs[0].ReplicaConfig()
			if err != nil {
				t.Fatal(err)
			}
			ref, err := rc.Replica()
			if err != nil {
				t.Fatal(err)
			}
			if ref.URL != tt.wantURL {
				t.Errorf("url = %q, want %q", ref.URL, tt.wantURL)
			}
			if !reflect.DeepEqual(ref.Opts, tt.wantOpts) {
				t.Errorf("options:\n got %+v\nwant %+v", ref.Opts, tt.wantOpts)
			}
			// The backend accepts what the CLI built (clients connect
			// lazily, so nothing is dialled).
			_, err = backends.OpenWithOptions(t.Context(), ref.URL, ref.Opts)
			switch {
			case tt.openErr == "" && err != nil:
				t.Errorf("backend rejects it: %v", err)
			case tt.openErr != "" && (err == nil || !strings.Contains(err.Error(), tt.openErr)):
				t.Errorf("backend: err = %v, want one containing %q", err, tt.openErr)
			}
		})
	}
}

// S3 keys given globally or on a replica of another backend do not apply
// to it (as in Litestream), so they are no error there; except the
// server-side encryption keys on the replica itself (config_test.go):
// ignoring those would store plaintext where encryption was asked for.
func TestS3KeysOnOtherBackends(t *testing.T) {
	const y = `
access-key-id: AKIA
secret-access-key: shh
sign-payload: false
sse-kms-key-id: k
dbs:
  - path: /a.db
    replica:
      url: nats://127.0.0.1:4222/b
      token: t
      max-reconnects: 3
      storage-class: STANDARD
`
	if _, err := ParseConfig([]byte(y), true, env(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestRedactErr_ConfiguredSecrets(t *testing.T) {
	ref := replicaRef{
		URL:  "sftp://alice:urlpass1@h/x",
		Opts: backends.Options{Password: "cfg-password", SecretAccessKey: "aws/secret+key", Token: "tok"},
	}
	base := errors.New("denied")
	err := ref.redactErr(fmt.Errorf("login to %s with cfg-password, aws/secret+key and urlpass1 and tok: %w", ref.URL, base))
	msg := checkRedacted(t, err, base, "cfg-password", "aws/secret+key", "urlpass1")
	// Too short to replace safely: left alone rather than mangling words.
	if !strings.Contains(msg, "and tok:") {
		t.Errorf("message %q: a 3-byte value was replaced", msg)
	}
	if got := redactString("bad token cfg-password", ref); got != "bad token xxxxx" {
		t.Errorf("redactString = %q", got)
	}
	if got := redactString("", ref); got != "" {
		t.Errorf("redactString of no error = %q", got)
	}
}

// A replica URL that does not parse, or names a backend this build lacks,
// does not fail the configuration: opening that replica reports it, so
// status still shows the other databases.
func TestReplica_UnknownScheme(t *testing.T) {
	cfg, err := ParseConfig([]byte("dbs:\n  - path: /a.db\n    replica: {url: 'oss://bkt/a', access-key-id: AKIA}\n"), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := cfg.DBs[0].Replica.Replica()
	if err != nil || ref.URL != "oss://bkt/a" || !reflect.DeepEqual(ref.Opts, backends.Options{}) {
		t.Fatalf("Replica() = %+v, %v", ref, err)
	}
	if _, err := openReplica(t.Context(), ref, nil); err == nil || !strings.Contains(err.Error(), "oss") {
		t.Errorf("open: err = %v, want one naming the scheme", err)
	}
}

// TestS3CompatKeys: Litestream's S3 compatibility keys reach the backend
// options (the key file read), and the S3 client gets them.
func TestS3CompatKeys(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sse.key")
	key := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	writeFile(t, keyFile, key+"\n")
	y := fmt.Sprintf(`
sign-payload: false
dbs:
  - path: /a.db
    replica:
      url: s3://b/a?endpoint=127.0.0.1:9000
      sign-accept-encoding: false
      require-content-md5: false
      put-object-content-md5: true
      storage-class: STANDARD_IA
      sse-customer-key-path: %s
`, keyFile)
	cfg, err := ParseConfig([]byte(y), true, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := cfg.DBs[0].Replica.Replica()
	if err != nil {
		t.Fatal(err)
	}
	o := ref.Opts
	if o.SignPayload == nil || *o.SignPayload || o.SignAcceptEncoding == nil || *o.SignAcceptEncoding ||
		o.RequireContentMD5 == nil || *o.RequireContentMD5 || o.PutObjectContentMD5 == nil || !*o.PutObjectContentMD5 ||
		o.StorageClass != "STANDARD_IA" || o.SSECustomerKey != key {
		t.Fatalf("options %+v", o)
	}
	c, err := openReplica(t.Context(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := c.(*s3.Client).Config().Compat
	want := s3.Compat{UnsignedPayload: true, NoSignAcceptEncoding: true, NoDeleteContentMD5: true, PutContentMD5: true,
		StorageClass: "STANDARD_IA", SSECustomerAlgorithm: "AES256", SSECustomerKey: key}
	if got != want {
		t.Errorf("compat %+v, want %+v", got, want)
	}
	// The key never shows in an error.
	if err := redactErr(fmt.Errorf("failed with %s", key), ref.URL, optionSecrets(o)...); strings.Contains(err.Error(), key) {
		t.Errorf("SSE-C key in %q", err)
	}
}

// TestSFTPConcurrentWrites: concurrent-writes: false reaches the SFTP
// client (sequential writes), as in Litestream.
func TestSFTPConcurrentWrites(t *testing.T) {
	for _, tc := range []struct {
		key        string
		sequential bool
	}{{"", false}, {"concurrent-writes: true", false}, {"concurrent-writes: false", true}} {
		y := "dbs:\n  - path: /a.db\n    replica:\n      url: 'sftp://u:pw@h/p?insecure-ignore-host-key=true'\n"
		if tc.key != "" {
			y += "      " + tc.key + "\n"
		}
		cfg, err := ParseConfig([]byte(y), true, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := cfg.DBs[0].Replica.Replica()
		if err != nil {
			t.Fatal(err)
		}
		c, err := openReplica(t.Context(), ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.(*sftp.Client).Config().SequentialWrites; got != tc.sequential {
			t.Errorf("%q: sequential writes %v", tc.key, got)
		}
	}
}
