package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/litestream-go/litestream/internal/testserver"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startTokenNATS runs an in-process NATS server with JetStream on 127.0.0.1
// that requires token (internal/testserver), creates the object store
// bucket, and returns the client URL.
func startTokenNATS(t *testing.T, token, bucket string) string {
	t.Helper()
	n := testserver.StartNATSWith(t, natsserver.Options{Authorization: token}, nats.Token(token))
	n.CreateBucket(t, bucket)
	return n.URL
}

// TestConfigCredentials_NATS replicates with a config file whose replica
// needs options the URL does not carry (a token from ${VAR} at the top level,
// the bucket key for a nats:// URL without one, a timeout), restores with the
// same config and compares; then checks that no command prints the token,
// and that a wrong token fails without printing it either.
func TestConfigCredentials_NATS(t *testing.T) {
	const token = "nats-cli-s3cret-token"
	serverURL := startTokenNATS(t, token, "cli")

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	cfgPath := filepath.Join(dir, "litestream.yml")
	const cfgText = `
token: ${NATS_TOKEN}
dbs:
  - path: %s
    replica:
      url: %s
      bucket: cli
      timeout: 5s
      sync-interval: 50ms
`
	writeFile(t, cfgPath, fmt.Sprintf(cfgText, dbPath, serverURL))
	// Debug logging: the backend's messages must not show the token either.
	vars := []string{"NATS_TOKEN=" + token, "LOG_LEVEL=debug"}

	db := openAppWith(t, dbPath, "", itemsSchema)

	var printed strings.Builder // everything the commands wrote
	mustRun := func(args ...string) string {
		t.Helper()
		res := runCLIEnv(t, vars, args...)
		printed.WriteString(res.stdout + res.stderr)
		if res.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
		return res.stdout
	}

	// A few rounds of transactions, each replicated with -once.
	for round := range 3 {
		for i := range 20 {
			mustExec(t, db, `INSERT INTO items(name, payload) VALUES (?, randomblob(?))`, fmt.Sprintf("r%d-%d", round, i), 200+i*37)
		}
		mustExec(t, db, `UPDATE items SET name = name || '+' WHERE id % 3 = ?`, round)
		mustExec(t, db, `DELETE FROM items WHERE id % 7 = ?`, round)
		mustRun("replicate", "-once", "-config", cfgPath)
	}

	if out := mustRun("ltx", "-config", cfgPath, dbPath); strings.Count(out, "\n") < 2 {
		t.Errorf("ltx lists no files:\n%s", out)
	}
	wantReplica := serverURL + "/cli"
	for _, cmd := range []string{"status", "databases"} {
		if out := mustRun(cmd, "-config", cfgPath); !strings.Contains(out, wantReplica) || strings.Contains(out, "  error  ") {
			t.Errorf("%s output lacks %s or shows an error:\n%s", cmd, wantReplica, out)
		}
	}

	restored := filepath.Join(dir, "restored.db")
	mustRun("restore", "-config", cfgPath, "-integrity-check", "full", "-o", restored, dbPath)

	mustExec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
	sameFiles(t, dbPath, restored, 4096) // the restored database equals the checkpointed source
	const rows = `SELECT count(*) || ':' || group_concat(name || length(payload)) FROM (SELECT * FROM items ORDER BY id)`
	var want string
	if err := db.QueryRow(rows).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, restored, rows); got != want {
		t.Errorf("restored rows differ:\n got %.200s\nwant %.200s", got, want)
	}

	if strings.Contains(printed.String(), token) {
		t.Errorf("a command printed the token:\n%s", printed.String())
	}

	// A wrong token: the commands fail, name the replica, and do not print
	// the token they were given.
	const wrong = "wrong-token-value"
	badCfg := filepath.Join(dir, "bad.yml")
	writeFile(t, badCfg, fmt.Sprintf(cfgText, dbPath, serverURL))
	badVars := []string{"NATS_TOKEN=" + wrong}
	res := runCLIEnv(t, badVars, "restore", "-config", badCfg, "-o", filepath.Join(dir, "bad.db"), dbPath)
	code, stdout, stderr := res.code, res.stdout, res.stderr
	if code == 0 || !strings.Contains(stderr, wantReplica) || !strings.Contains(strings.ToLower(stderr), "authorization") {
		t.Errorf("restore with a wrong token: exit %d, want a failure naming %s and the authorization error:\n%s%s", code, wantReplica, stdout, stderr)
	}
	out := stdout + stderr
	res = runCLIEnv(t, badVars, "status", "-config", badCfg)
	code, stdout, stderr = res.code, res.stdout, res.stderr
	if code != 0 || !strings.Contains(stdout, "error") {
		t.Errorf("status with a wrong token: exit %d, want a row with the error:\n%s%s", code, stdout, stderr)
	}
	out += stdout + stderr
	if strings.Contains(out, wrong) {
		t.Errorf("the wrong token was printed:\n%s", out)
	}
}
