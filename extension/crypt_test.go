package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs/vfstest"
)

// encryptReplica copies every file of the plain replica at src into a new
// replica encrypted to recipient, and returns its URL.
func encryptReplica(t *testing.T, src string, recipient age.Recipient) string {
	t.Helper()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "encrypted")
	plain := file.New(src)
	enc, err := crypt.New(file.New(root), crypt.Options{Recipients: []age.Recipient{recipient}})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfstest.CopyReplica(ctx, enc, plain); err != nil {
		t.Fatal(err)
	}
	return "file://" + root
}

// TestShellEncrypted (issue 13): the VFS answers the same queries, time
// travel included, on an age-encrypted copy of the fixture replica with
// LITESTREAM_AGE_IDENTITY_FILE as on the plain one; without the identity, or
// with another one, opening fails with an error that says why.
func TestShellEncrypted(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	keyPath, otherPath := filepath.Join(dir, "key.txt"), filepath.Join(dir, "other.txt")
	os.WriteFile(keyPath, []byte(id.String()+"\n"), 0o600)
	os.WriteFile(otherPath, []byte(other.String()+"\n"), 0o600)
	encURL := encryptReplica(t, testsupport.FixtureReplica(t), id.Recipient())

	script := `.load ` + extPath + `
.open file:app.db?vfs=litestream
select count(*), total(id), total(length(name)) from users;
select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events;
pragma integrity_check;
select litestream_set_time(5);
select count(*), total(id), total(length(name)) from users;
select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events;
select * from users where id = 1234;
select litestream_set_time('latest'), litestream_txid();
select * from events where id = 20001;
`
	want, errOut, err := shell(t, []string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t)}, script)
	if err != nil || !strings.Contains(want, "6000|") {
		t.Fatalf("plain fixture: %v\n%s\n%s", err, want, errOut)
	}
	got, errOut, err := shell(t, []string{"LITESTREAM_REPLICA_URL=" + encURL, "LITESTREAM_AGE_IDENTITY_FILE=" + keyPath}, script)
	if err != nil || got != want {
		t.Errorf("encrypted replica: %v\noutput:\n%s\nwant:\n%s\nstderr:\n%s", err, got, want, errOut)
	}
	if strings.Contains(got+errOut, id.String()) {
		t.Error("the secret key appears in the output")
	}

	query := ".load " + extPath + "\n.open file:app.db?vfs=litestream\nselect count(*) from users;\n"
	for name, tc := range map[string]struct {
		env  []string
		want string
	}{
		"no identity":    {[]string{"LITESTREAM_REPLICA_URL=" + encURL}, "encrypted with age"},
		"other identity": {[]string{"LITESTREAM_REPLICA_URL=" + encURL, "LITESTREAM_AGE_IDENTITY_FILE=" + otherPath}, "encrypted to other recipients"},
		"plain replica":  {[]string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t), "LITESTREAM_AGE_IDENTITY_FILE=" + keyPath}, "not encrypted"},
	} {
		out, errOut, err := shell(t, tc.env, query)
		if err == nil || strings.Contains(out, "6000") || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, ".ltx") {
			t.Errorf("%s: err %v, stdout %q, want an error naming a file and %q; stderr:\n%s", name, err, out, tc.want, errOut)
		}
		if strings.Contains(out+errOut, id.String()) || strings.Contains(out+errOut, other.String()) {
			t.Errorf("%s: a secret key appears in the output", name)
		}
	}
}
