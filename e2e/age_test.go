package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/litestream-go/litestream/internal/testsupport"
)

// ageKeyFile writes a fresh X25519 identity to a file (as age-keygen does)
// and returns the file and the public key.
func ageKeyFile(t *testing.T, dir, name string) (path, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	writeFile(t, path, "# public key: "+id.Recipient().String()+"\n"+id.String()+"\n")
	return path, id.Recipient().String()
}

// TestAgeReplica (issue 13): replicate with `age:` to a file replica while
// the test writes (compaction to level 1 and level-9 snapshots included),
// then: no stored object holds plaintext (a marker string from every row,
// or the LTX magic); restore from the config equals the checkpointed source
// byte for byte; restores at several TXIDs by URL with
// LITESTREAM_AGE_IDENTITY_FILE are exactly the prefix of the history each
// TXID names; without an identity, or with another one, restore fails with
// an error naming the file and the cause, and no secret key appears.
func TestAgeReplica(t *testing.T) {
	dir := t.TempDir()
	keyPath, recipient := ageKeyFile(t, dir, "key.txt")
	otherKey, _ := ageKeyFile(t, dir, "other.txt")
	keyText, _ := os.ReadFile(keyPath)
	secret := strings.TrimSpace(strings.Split(string(keyText), "\n")[1])
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	cfgPath := filepath.Join(dir, "litestream.yml")
	writeFile(t, cfgPath, fmt.Sprintf(`
levels: [{interval: 1s}]
snapshot: {interval: 2s, retention: 1h}
dbs:
  - path: %s
    monitor-interval: 50ms
    replica:
      url: file://%s
      sync-interval: 100ms
      age:
        recipients: [%s]
        identities: [%s]
`, dbPath, replica, recipient, keyPath))

	db := openAppWith(t, dbPath, "&_txlock=immediate", itemsSchema)

	// A writer without an identity cannot compact: refused at start.
	noID := filepath.Join(dir, "noid.yml")
	writeFile(t, noID, fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n      age: {recipients: [%s]}\n", dbPath, filepath.Join(dir, "r2"), recipient))
	if res := runCLI(t, "replicate", "-config", noID); res.code == 0 || !strings.Contains(res.stdout+res.stderr, "age.identities") {
		t.Errorf("replicate with recipients only: exit %d, want an error naming age.identities:\n%s%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "r2")); err == nil && countLTX(filepath.Join(dir, "r2")) > 0 {
		t.Errorf("replicate with recipients only wrote files")
	}

	d := startProcess(t, binPath, cliEnv(), "replicate", "-config", cfgPath)
	out := d.Out

	const marker = "SECRET-MARKER-"
	n := 0
	insert := func(k int) {
		for range k { // one transaction each
			n++
			mustExec(t, db, `INSERT INTO items(id, name, payload) VALUES (?, ?, zeroblob(?))`, n, fmt.Sprintf("%s%d", marker, n), 200+n%700)
		}
	}
	levelFiles := func(level int) int {
		files, _ := listReplica(replica)
		n := 0
		for _, f := range files {
			if f.Level == level {
				n++
			}
		}
		return n
	}
	insert(40)
	// Compaction and snapshots run while writes go on.
	waitFor(t, "a compaction to level 1 and a snapshot", 60*time.Second, func() bool {
		if strings.Contains(out.String(), "level=ERROR") {
			t.Fatalf("replicate logged an error:\n%s", out.String())
		}
		insert(1)
		time.Sleep(20 * time.Millisecond) // pacing of the write load, not a synchronization
		return n >= 150 && levelFiles(1) > 0 && levelFiles(9) > 0
	})
	insert(40)
	mustExec(t, db, `INSERT INTO items(id, name, payload) SELECT id + 100000, name, zeroblob(3000) FROM items`) // a large transaction
	n++                                                                                                         // counts as one step of the history below

	if code := d.Term(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d after SIGTERM (-1: none within 60 s, or killed by the signal):\n%s", code, out.String())
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("the daemon's log holds the secret key")
	}

	// Nothing readable in storage.
	files := testsupport.ReadTree(t, replica)
	levels := map[string]int{}
	for p, b := range files {
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("LTX1")) {
			t.Errorf("%s holds plaintext", p)
		}
		if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
			t.Errorf("%s is not an age file", p)
		}
		levels[filepath.Base(filepath.Dir(p))]++
	}
	if levels["0"] == 0 || levels["1"] == 0 || levels["9"] == 0 {
		t.Fatalf("files by level %v: want levels 0, 1 and 9", levels)
	}

	// Latest state, from the config: equal to the checkpointed source.
	mustExec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
	restored := filepath.Join(dir, "restored.db")
	mustCLI(t, "restore", "-config", cfgPath, "-integrity-check", "full", "-o", restored, dbPath)
	src, _ := os.ReadFile(dbPath)
	dst, _ := os.ReadFile(restored)
	if !bytes.Equal(src, dst) {
		t.Errorf("restored database (%d bytes) differs from the checkpointed source (%d bytes)", len(dst), len(src))
	}

	// Every TXID, by URL with the identity from the environment: the state
	// at each TXID is a prefix of the history (rows 1..c exactly as
	// written, passing an integrity check), c never decreasing, and the
	// latest holds every row. (A sync may carry several transactions, so
	// a TXID is not one row.)
	url := "file://" + replica
	withKey := []string{"LITESTREAM_CONFIG=" + filepath.Join(dir, "absent.yml"), "LITESTREAM_AGE_IDENTITY_FILE=" + keyPath}
	res := runCLIEnv(t, withKey, "restore", "-dry-run", "-json", url)
	if res.code != 0 {
		t.Fatalf("restore -dry-run: %s", res)
	}
	var plan struct {
		TXID string `json:"txid"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &plan); err != nil {
		t.Fatal(err)
	}
	maxTXID, err := strconv.ParseUint(plan.TXID, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	countAt := func(txid uint64) int {
		t.Helper()
		p := filepath.Join(dir, fmt.Sprintf("at-%d.db", txid))
		if res := runCLIEnv(t, withKey, "restore", "-integrity-check", "quick", "-txid", strconv.FormatUint(txid, 16), "-o", p, url); res.code != 0 {
			t.Fatalf("restore -txid %d: %s", txid, res)
		}
		if queryString(t, p, "SELECT count(*) FROM sqlite_master WHERE name = 'items'") == "0" {
			return 0
		}
		c, _ := strconv.Atoi(queryString(t, p, "SELECT count(*) FROM items WHERE id < 100000"))
		q := fmt.Sprintf("SELECT count(*) FROM items WHERE id <= %d AND name = '%s' || id AND length(payload) = 200 + id %% 700", c, marker)
		if got := queryString(t, p, q); got != strconv.Itoa(c) {
			t.Errorf("TXID %d: %s of rows 1..%d as written", txid, got, c)
		}
		return c
	}
	prev, distinct := 0, 0
	for txid := uint64(1); txid <= maxTXID; txid++ {
		c := countAt(txid)
		if c < prev {
			t.Errorf("TXID %d has %d rows, TXID %d had %d", txid, c, txid-1, prev)
		}
		if c != prev {
			distinct++
		}
		prev = c
	}
	if prev != n-1 {
		t.Errorf("latest TXID %d has %d rows, want %d", maxTXID, prev, n-1)
	}
	t.Logf("%d TXIDs, %d distinct states, files by level %v", maxTXID, distinct, levels)
	if distinct < 3 {
		t.Errorf("only %d distinct states over %d TXIDs", distinct, maxTXID)
	}

	// restore -f follows the encrypted replica to its latest TXID, with
	// the same bytes as the restore above.
	follow := filepath.Join(dir, "follow.db")
	f := testsupport.StartProcess(t, "restore -f", binPath, append(cliEnv(), withKey...), "restore", "-f", "-o", follow, url)
	ferr := f.Out
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(follow + "-txid")
		if strings.TrimSpace(string(b)) == plan.TXID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore -f did not reach TXID %s; output:\n%s", plan.TXID, ferr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the follower's TXID file
	}
	// A signal ends the follower as a cancelled context did in process.
	if code := f.Term(60 * time.Second); code != 0 {
		t.Fatalf("restore -f exit %d after SIGTERM: %s", code, ferr.String())
	}
	if got, _ := os.ReadFile(follow); !bytes.Equal(got, dst) {
		t.Errorf("restore -f output (%d bytes) differs from the restored database (%d bytes)", len(got), len(dst))
	}

	// ltx lists the files with their plaintext sizes.
	if res := runCLIEnv(t, withKey, "ltx", url); res.code != 0 || !strings.Contains(res.stdout, "0000000000000001") {
		t.Errorf("ltx: %s", res)
	}

	// Without an identity, with another one: a clear error naming a file.
	for name, e := range map[string][]string{
		"no identity":    {"LITESTREAM_CONFIG=" + filepath.Join(dir, "absent.yml")},
		"other identity": {"LITESTREAM_CONFIG=" + filepath.Join(dir, "absent.yml"), "LITESTREAM_AGE_IDENTITY_FILE=" + otherKey},
	} {
		res := runCLIEnv(t, e, "restore", "-o", filepath.Join(dir, "x-"+strings.ReplaceAll(name, " ", "")+".db"), url)
		code, msg := res.code, res.stdout+res.stderr
		t.Logf("%s: %s", name, strings.TrimSpace(msg))
		want := "encrypted to other recipients"
		if name == "no identity" {
			want = "encrypted with age; reading it needs an age identity"
		}
		if code == 0 || !strings.Contains(msg, want) || !strings.Contains(msg, ".ltx") {
			t.Errorf("%s: exit %d, want an error naming the file and %q:\n%s", name, code, want, msg)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("%s: output holds the secret key", name)
		}
	}
}

// TestAgeReplica_V3: a Litestream v0.3 replica written with its `age:`
// section (each snapshot and WAL segment encrypted whole: age(lz4(data)))
// restores with the same section, at its latest state and at each point in
// time; without an identity, or with another one, restore fails saying why.
// Before, an `age:` section was refused and such a replica could not be
// restored at all.
func TestAgeReplica_V3(t *testing.T) {
	dir := t.TempDir()
	keyPath, recipient := ageKeyFile(t, dir, "key.txt")
	otherKey, _ := ageKeyFile(t, dir, "other.txt")
	rcpt, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		t.Fatal(err)
	}
	objs, rowsAt := v3Fixture(t)
	root := filepath.Join(dir, "replica")
	for _, o := range objs {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(o.data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(o.key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, buf.String())
		if err := os.Chtimes(p, o.time, o.time); err != nil {
			t.Fatal(err)
		}
	}
	latest := 0
	for _, n := range rowsAt {
		latest = max(latest, n)
	}
	dbPath := filepath.Join(dir, "app.db")
	cfg := filepath.Join(dir, "litestream.yml")
	writeFile(t, cfg, fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n      age: {identities: [%s]}\n", dbPath, root, keyPath))
	out := filepath.Join(dir, "latest.db")
	mustCLI(t, "restore", "-config", cfg, "-o", out, dbPath)
	if n := rowCount(t, out); n != latest {
		t.Errorf("latest holds %d rows, want %d", n, latest)
	}
	for ts, want := range rowsAt {
		out := filepath.Join(dir, fmt.Sprintf("at-%d.db", ts.Unix()))
		if res := runCLI(t, "restore", "-config", cfg, "-timestamp", ts.Format(time.RFC3339), "-o", out, dbPath); res.code != 0 {
			t.Fatalf("restore at %s: %s", ts, res)
		}
		if n := rowCount(t, out); n != want {
			t.Errorf("at %s holds %d rows, want %d", ts.Format(time.RFC3339), n, want)
		}
	}
	url := "file://" + root
	for name, tc := range map[string]struct {
		env  []string
		want string
	}{
		"no identity":    {[]string{"LITESTREAM_CONFIG=" + filepath.Join(dir, "absent.yml")}, "encrypted with age; reading it needs an age identity"},
		"other identity": {[]string{"LITESTREAM_CONFIG=" + filepath.Join(dir, "absent.yml"), "LITESTREAM_AGE_IDENTITY_FILE=" + otherKey}, "encrypted to other recipients"},
		"identity":       {[]string{"LITESTREAM_CONFIG=" + filepath.Join(dir, "absent.yml"), "LITESTREAM_AGE_IDENTITY_FILE=" + keyPath}, "ok"},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(name, " ", "")+".db")
		res := runCLIEnv(t, tc.env, "restore", "-o", out, url)
		code, stdout, stderr := res.code, res.stdout, res.stderr
		t.Logf("%s: exit %d %s", name, code, strings.TrimSpace(stdout+stderr))
		switch tc.want {
		case "ok":
			if code != 0 || rowCount(t, out) != latest {
				t.Errorf("%s: exit %d\n%s%s", name, code, stdout, stderr)
			}
		default:
			if code == 0 || !strings.Contains(stdout+stderr, tc.want) || !strings.Contains(stdout+stderr, "generations/") {
				t.Errorf("%s: exit %d, want an error naming the object and %q:\n%s%s", name, code, tc.want, stdout, stderr)
			}
		}
	}
}
