package writer

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
)

// fixtureReplica returns a copy of the Litestream v0.5.18 fixture replica
// holding only the given levels.
func fixtureReplica(t *testing.T, levels ...int) remote.Client {
	t.Helper()
	dir := testsupport.FixtureCopy(t)
	keep := map[int]bool{}
	for _, l := range levels {
		keep[l] = true
	}
	c := file.New(dir)
	for l := 0; l <= remote.MaxLevel; l++ {
		if keep[l] {
			continue
		}
		files, err := c.LTXFiles(context.Background(), l, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteLTXFiles(context.Background(), files); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// fixtureQuery runs the fixture README's two queries on a database image.
func fixtureQuery(t *testing.T, img []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.db")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q, %v", ok, err)
	}
	var u1 int
	var u2, u3 float64
	if err := db.QueryRow(`select count(*), total(id), total(length(name)) from users`).Scan(&u1, &u2, &u3); err != nil {
		t.Fatal(err)
	}
	var e1 int
	var e2, e3, e4 float64
	var e5 string
	if err := db.QueryRow(`select count(*), total(id), total(user_id), total(length(payload)), coalesce(hex(substr(max(payload),1,8)), '') from events`).Scan(&e1, &e2, &e3, &e4, &e5); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d, %.0f, %.0f | %d, %.0f, %.0f, %.0f, %s", u1, u2, u3, e1, e2, e3, e4, e5)
}

// TestFixtureLevels reads the Litestream replica through each of its levels
// alone (with the snapshot): every TXID a level reaches restores the same
// bytes as the level-0 chain, and the README's listed TXIDs give its figures.
func TestFixtureLevels(t *testing.T) {
	listed := map[ltx.TXID]string{
		1:  "0, 0, 0 | 0, 0, 0, 0, ",
		5:  "2000, 2001000, 15796 | 1069, 662200, 2690966, 213800, FFB33BF0C0A7EF89",
		9:  "4000, 8002000, 32561 | 1931, 2485056, 4912375, 386200, FFE0B5640D7B1F57",
		15: "6000, 18003000, 49796 | 2585, 5218136, 6556214, 517000, FFCA921B602616FE",
	}
	l0 := fixtureReplica(t, 0)
	want := map[ltx.TXID][]byte{}
	for txid := ltx.TXID(1); txid <= 15; txid++ {
		img, _, err := planRestore(t, l0, txid, time.Time{})
		if err != nil {
			t.Fatalf("level-0 restore of TXID %d: %v", txid, err)
		}
		want[txid] = img
	}
	for _, tc := range []struct {
		name   string
		levels []int
		txids  []ltx.TXID // reachable through these levels
	}{
		{"level 1", []int{1}, []ltx.TXID{1, 5, 9, 15}},
		{"level 2", []int{2}, []ltx.TXID{1, 9, 15}},
		{"snapshot and level 1", []int{9, 1}, []ltx.TXID{1, 5, 9, 15}},
		{"snapshot and level 2", []int{9, 2}, []ltx.TXID{1, 9, 15}},
		{"snapshot alone", []int{9}, []ltx.TXID{1}},
		{"all levels", []int{0, 1, 2, 9}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fixtureReplica(t, tc.levels...)
			txids := tc.txids
			if txids == nil {
				for txid := ltx.TXID(1); txid <= 15; txid++ {
					txids = append(txids, txid)
				}
			}
			for _, txid := range txids {
				img, plan, err := planRestore(t, c, txid, time.Time{})
				if err != nil {
					t.Fatalf("TXID %d: %v", txid, err)
				}
				if !bytes.Equal(img, want[txid]) {
					t.Fatalf("TXID %d (plan %v) differs from the level-0 restore", txid, plan.Files)
				}
				if exp, ok := listed[txid]; ok {
					if got := fixtureQuery(t, img); got != exp {
						t.Fatalf("TXID %d: %s, want %s", txid, got, exp)
					}
				}
			}
		})
	}
	// The latest state is byte-identical to the source database.
	src, err := os.ReadFile(testsupport.FixtureSourceDB(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want[15], src) {
		t.Fatalf("TXID 15 differs from source.db")
	}
}
