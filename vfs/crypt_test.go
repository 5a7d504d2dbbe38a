package vfs_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/vfs/vfstest"
)

// TestColdPointQueryEncrypted (issue 13): on an age-encrypted copy of a
// replica, a cold point query answers the same and costs at most one more
// sequential round trip than on the plain replica (the page index, the
// fetcher's coalescing and prefetch work through remote/crypt; a cold
// file's age header comes with its first chunk or beside its tail read).
// Requests are counted below the encryption, as the storage sees them.
func TestColdPointQueryEncrypted(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	if _, err := p.Exec(ctx, insertRows(4000, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, "update t set v = v + 1 where id % 97 = 0"); err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	encRoot := filepath.Join(t.TempDir(), "encrypted")
	w, err := crypt.New(file.New(encRoot), crypt.Options{Recipients: []age.Recipient{id.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	plain := file.New(root)
	if err := vfstest.CopyReplica(ctx, w, plain); err != nil {
		t.Fatal(err)
	}

	const delay = 10 * time.Millisecond
	query := func(name string, c remote.Client, fc *vfstest.Faulty) (rt int, reqs int64) {
		t.Helper()
		const u = "file:///replica"
		_, vname := register(t, map[string]remote.Client{u: c}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour}})
		db := openDB(t, vname, u)
		db.SetMaxOpenConns(1)
		var n, v int
		err := db.QueryRowContext(ctx, "select length(pad), v from t where id = ?", 1261).Scan(&n, &v)
		if err != nil || n != 1000 || v != 1262 {
			t.Fatalf("%s: query: %d %d %v", name, n, v, err)
		}
		rt, reqs = fc.SequentialRoundTrips(), fc.Requests()
		t.Logf("%s: cold point query (open + query): %d sequential round trips, %d requests, %d bytes", name, rt, reqs, fc.Bytes.Load())
		if err := db.QueryRowContext(ctx, "select count(*), total(v) from t").Scan(&n, new(float64)); err != nil || n != 4000 {
			t.Fatalf("%s: scan: %d %v", name, n, err)
		}
		return rt, reqs
	}
	pfc := &vfstest.Faulty{Client: file.New(root), Delay: delay}
	plainRT, _ := query("plain", pfc, pfc)
	efc := &vfstest.Faulty{Client: file.New(encRoot), Delay: delay}
	enc, err := crypt.New(efc, crypt.Options{Identities: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	encRT, _ := query("encrypted", enc, efc)
	if encRT > plainRT+1 {
		t.Errorf("encrypted: %d sequential round trips, plain %d: want at most one more", encRT, plainRT)
	}

	// Without the identity: an error, never rows.
	noID, err := crypt.New(file.New(encRoot), crypt.Options{Recipients: []age.Recipient{id.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	const u = "file:///noid"
	_, vname := register(t, map[string]remote.Client{u: noID}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour}})
	db := openDB(t, vname, u)
	var n int
	if err := db.QueryRowContext(ctx, "select count(*) from t").Scan(&n); err == nil {
		t.Errorf("query without an identity answered %d", n)
	}
}
