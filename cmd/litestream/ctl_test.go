package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-go/litestream/control"
)

// mustRunOK runs our command line and fails the test unless it exits 0.
func mustRunOK(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := run(t, nil, args...)
	if code != 0 {
		t.Fatalf("litestream %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// TestControlCommands drives the daemon's databases over its control
// socket with info, list, sync, stop, start, register and unregister, and
// checks what each did to the replica.
func TestControlCommands(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	b := filepath.Join(dir, "b.db")
	sock := filepath.Join(dir, "ls.sock")
	appA := openApp(t, a)
	appB := openApp(t, b)
	cfg := writeConfig(t, dir, fmt.Sprintf("socket: {enabled: true, path: %s}\ndbs:\n  - path: %s\n    replica: {url: 'file://%s/ra', sync-interval: 1h}\n", sock, a, dir))
	d := startDaemon(t, "-config", cfg)
	waitControl(t, sock)
	S := []string{"-socket", sock}

	out := mustRunOK(t, append([]string{"info"}, S...)...)
	if !regexp.MustCompile(`^Litestream development\n  PID:        \d+\n  Uptime:     \S+\n  Started at: \S+\n  Databases:  1\n$`).MatchString(out) {
		t.Errorf("info:\n%s", out)
	}
	var info struct {
		Version       string `json:"version"`
		PID           int    `json:"pid"`
		DatabaseCount int    `json:"database_count"`
	}
	if err := json.Unmarshal([]byte(mustRunOK(t, append([]string{"info", "-json"}, S...)...)), &info); err != nil || info.PID != os.Getpid() || info.DatabaseCount != 1 {
		t.Errorf("info -json = %+v, %v", info, err)
	}
	if out := mustRunOK(t, append([]string{"list"}, S...)...); !strings.HasPrefix(out, a+" [replicating] (last sync: ") {
		t.Errorf("list:\n%s", out)
	}

	// sync -wait uploads now (the configured interval is an hour).
	if _, err := appA.Exec(`INSERT INTO t(v) VALUES ('one')`); err != nil {
		t.Fatal(err)
	}
	var sr syncResult
	if err := json.Unmarshal([]byte(mustRunOK(t, append(append([]string{"sync", "-wait", "-json"}, S...), a)...)), &sr); err != nil {
		t.Fatal(err)
	}
	if _, _, txid := replicaFiles(t, filepath.Join(dir, "ra")); sr.ReplicaTXID == nil || *sr.ReplicaTXID != uint64(txid) || sr.TXID != uint64(txid) || sr.DBPath != a {
		t.Errorf("sync -wait -json = %+v; replica at %d", sr, txid)
	}

	// stop: a final sync, then the database is stopped; sync refuses.
	if _, err := appA.Exec(`INSERT INTO t(v) VALUES ('two')`); err != nil {
		t.Fatal(err)
	}
	out = mustRunOK(t, append(append([]string{"stop"}, S...), a)...)
	_, _, txid := replicaFiles(t, filepath.Join(dir, "ra"))
	if want := fmt.Sprintf("status: stopped\ndb_path: %s\nstate: stopped\ntxid: %d\nsocket: %s\n", a, txid, sock); out != want {
		t.Errorf("stop:\n%s\nwant:\n%s", out, want)
	}
	if got := restoredQuery(t, filepath.Join(dir, "ra"), filepath.Join(dir, "check.db"), "SELECT group_concat(v) FROM t"); got != "one,two" {
		t.Errorf("after stop the replica holds %q, want one,two", got)
	}
	if out := mustRunOK(t, append(append([]string{"stop"}, S...), a)...); !strings.HasPrefix(out, "status: already_stopped\n") {
		t.Errorf("stop again:\n%s", out)
	}
	if code, _, stderr := run(t, nil, append(append([]string{"sync"}, S...), a)...); code != 1 || !strings.HasPrefix(stderr, "Error: sync failed: database not open") {
		t.Errorf("sync of a stopped database: exit %d %q", code, stderr)
	}
	if out := mustRunOK(t, append([]string{"list"}, S...)...); !strings.HasPrefix(out, a+" [stopped]") {
		t.Errorf("list after stop:\n%s", out)
	}
	if out := mustRunOK(t, append(append([]string{"start"}, S...), a)...); !strings.HasPrefix(out, "status: started\n") || !strings.Contains(out, "state: running\n") {
		t.Errorf("start:\n%s", out)
	}
	if code, _, stderr := run(t, nil, append(append([]string{"start"}, S...), filepath.Join(dir, "none.db"))...); code != 1 || !strings.Contains(stderr, "Error: start failed: database not found") {
		t.Errorf("start of an unknown database: exit %d %q", code, stderr)
	}

	// register a second database, write, sync, unregister.
	out = mustRunOK(t, append(append([]string{"register", "-replica", "file://" + dir + "/rb"}, S...), b)...)
	if want := fmt.Sprintf("status: registered\ndb_path: %s\nreplica: file://%s/rb\nsocket: %s\n", b, dir, sock); out != want {
		t.Errorf("register:\n%s\nwant:\n%s", out, want)
	}
	if out := mustRunOK(t, append(append([]string{"register", "-replica", "file://" + dir + "/rb"}, S...), b)...); !strings.HasPrefix(out, "status: already registered\n") {
		t.Errorf("register again:\n%s", out)
	}
	if _, err := appB.Exec(`INSERT INTO t(v) VALUES ('b1')`); err != nil {
		t.Fatal(err)
	}
	var ur unregisterResult
	if err := json.Unmarshal([]byte(mustRunOK(t, append(append([]string{"unregister", "-json"}, S...), b)...)), &ur); err != nil {
		t.Fatal(err)
	}
	if _, _, tb := replicaFiles(t, filepath.Join(dir, "rb")); ur.Status != "unregistered" || ur.FinalTXID != uint64(tb) || tb == 0 {
		t.Errorf("unregister -json = %+v; replica at %d", ur, tb)
	}
	if got := restoredQuery(t, filepath.Join(dir, "rb"), filepath.Join(dir, "checkb.db"), "SELECT group_concat(v) FROM t"); got != "b1" {
		t.Errorf("unregistered database's replica holds %q", got)
	}
	if out := mustRunOK(t, append(append([]string{"unregister", "-dry-run"}, S...), b)...); !strings.HasPrefix(out, "Dry run: unregister request preview\n") || !strings.HasSuffix(out, "No unregister request was sent.\n") {
		t.Errorf("unregister -dry-run:\n%s", out)
	}
	if out := mustRunOK(t, append([]string{"list", "-json"}, S...)...); strings.Contains(out, b) || !strings.Contains(out, `"status": "replicating"`) {
		t.Errorf("list -json after unregister:\n%s", out)
	}
	for _, args := range [][]string{{"start"}, {"register", "-replica", "file:///x"}, {"sync", "-timeout", "0", "/x"}} {
		code, _, stderr := run(t, nil, args...)
		if code != 1 || !strings.HasPrefix(stderr, "Error: ") {
			t.Errorf("%v: exit %d %q", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, nil, "info", "-socket", filepath.Join(dir, "none.sock")); code != 1 || !strings.HasPrefix(stderr, "Error: failed to connect to control socket") {
		t.Errorf("info without a daemon: exit %d %q", code, stderr)
	}
	d.sigs <- syscall.SIGTERM
	d.mustExit(0)
}

// TestControl_BothTools runs each tool's control commands against the
// other tool's daemon: Litestream v0.5.18's client against this daemon,
// and this client against Litestream's daemon. The text output of the two
// clients against one daemon is the same (durations aside).
func TestControl_BothTools(t *testing.T) {
	real := realLitestream(t)
	for _, daemonIsReal := range []bool{false, true} {
		t.Run(fmt.Sprintf("real-daemon=%v", daemonIsReal), func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "a.db")
			b := filepath.Join(dir, "b.db")
			sock := filepath.Join(dir, "ls.sock")
			appA := openApp(t, a)
			openApp(t, b)
			cfg := writeConfig(t, dir, fmt.Sprintf("socket: {enabled: true, path: %s}\ndbs:\n  - path: %s\n    replica: {url: 'file://%s/ra'}\n", sock, a, dir))
			if daemonIsReal {
				ctx, cancel := context.WithCancel(context.Background())
				cmd := real.cmd(ctx, nil, "replicate", "-config", cfg)
				var out lockedBuffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_ = cmd.Process.Signal(syscall.SIGTERM)
					done := make(chan struct{})
					go func() { _ = cmd.Wait(); close(done) }()
					select {
					case <-done:
					case <-time.After(30 * time.Second):
						cancel()
						t.Errorf("litestream did not stop:\n%s", out.String())
					}
					cancel()
				})
			} else {
				startDaemon(t, "-config", cfg)
			}
			waitControl(t, sock)
			if _, err := appA.Exec(`INSERT INTO t(v) VALUES ('x')`); err != nil {
				t.Fatal(err)
			}
			ours := func(args ...string) (int, string, string) { return run(t, nil, args...) }
			theirs := func(args ...string) (int, string, string) { return real.run(t, nil, args...) }
			S := []string{"-socket", sock}
			// Normalise what legitimately differs between two runs.
			norm := regexp.MustCompile(`("?(?:duration_ms|Uptime|Started at|last sync|last_sync_at)"?(?::\s*|: ))[^\s,)]+`)
			same := func(args ...string) string {
				t.Helper()
				c1, o1, e1 := ours(args...)
				c2, o2, e2 := theirs(args...)
				n1, n2 := norm.ReplaceAllString(o1, "${1}X"), norm.ReplaceAllString(o2, "${1}X")
				if c1 != 0 || c2 != 0 || n1 != n2 {
					t.Errorf("%v: ours exit %d\n%s%s\ntheirs exit %d\n%s%s", args, c1, o1, e1, c2, o2, e2)
				}
				return o1
			}
			same(append([]string{"list"}, S...)...)
			if out := same(append(append([]string{"sync", "-wait"}, S...), a)...); !strings.Contains(out, "replica_txid: ") {
				t.Errorf("sync -wait:\n%s", out)
			}
			same(append([]string{"list", "-json"}, S...)...)
			// Each command changes the daemon; alternate the clients.
			steps := []struct {
				run  func(...string) (int, string, string)
				args []string
				want string
			}{
				{ours, []string{"stop", a}, "status: stopped\n"},
				{theirs, []string{"stop", a}, "status: already_stopped\n"},
				{theirs, []string{"start", a}, "status: started\n"},
				{ours, []string{"start", a}, "status: already_running\n"},
				{theirs, []string{"register", "-replica", "file://" + dir + "/rb", b}, "status: registered\n"},
				{ours, []string{"register", "-replica", "file://" + dir + "/rb", b}, "status: already registered\n"},
				{ours, []string{"unregister", b}, "status: unregistered\n"},
				{theirs, []string{"unregister", b}, "status: already_unregistered\n"},
			}
			for _, s := range steps {
				code, out, stderr := s.run(append(append([]string{s.args[0]}, S...), s.args[1:]...)...)
				if code != 0 || !strings.HasPrefix(out, s.want) {
					t.Errorf("%v: exit %d\n%s%s\nwant a first line %q", s.args, code, out, stderr, s.want)
				}
			}
			for _, run := range []func(...string) (int, string, string){ours, theirs} {
				code, _, stderr := run(append(append([]string{"sync"}, S...), filepath.Join(dir, "none.db"))...)
				if code != 1 || !strings.HasPrefix(stderr, "Error: sync failed: database not found") {
					t.Errorf("sync of an unknown database: exit %d %q", code, stderr)
				}
			}
			var ours1, theirs1 map[string]any
			_, o1, _ := ours(append([]string{"info", "-json"}, S...)...)
			_, o2, _ := theirs(append([]string{"info", "-json"}, S...)...)
			if json.Unmarshal([]byte(o1), &ours1) != nil || json.Unmarshal([]byte(o2), &theirs1) != nil ||
				ours1["pid"] != theirs1["pid"] || ours1["database_count"] != float64(1) || theirs1["database_count"] != float64(1) {
				t.Errorf("info -json differs:\n%s\n%s", o1, o2)
			}
		})
	}
}

// TestEmptyConfigRegister: a config with no databases (as Litestream
// ships its sample) runs; databases are registered at run time and
// replicate. Before, such a config was refused.
func TestEmptyConfigRegister(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ls.sock")
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	cfg := writeConfig(t, dir, fmt.Sprintf("# nothing but the socket\nsocket:\n  enabled: true\n  path: %s\n", sock))
	d := startDaemon(t, "-config", cfg)
	waitControl(t, sock)
	if out := mustRunOK(t, "list", "-socket", sock); out != "No databases configured\n" {
		t.Errorf("list:\n%s", out)
	}
	mustRunOK(t, "register", "-socket", sock, "-replica", "file://"+filepath.Join(dir, "replica"), dbPath)
	insertRows(t, app, 6)
	mustRunOK(t, "sync", "-wait", "-socket", sock, dbPath)
	d.sigs <- syscall.SIGTERM
	d.mustExit(0)
	out := filepath.Join(dir, "restored.db")
	restoreTo(t, filepath.Join(dir, "replica"), out)
	if n := rowCount(t, out); n != 6 {
		t.Errorf("restored %d rows, want 6", n)
	}
}

// waitControl waits until a daemon answers on the control socket (the
// socket file appears at bind, before the listener accepts).
func waitControl(t *testing.T, sock string) {
	t.Helper()
	c := control.NewClient(sock, time.Second)
	waitFor(t, "the control socket", 20*time.Second, func() bool {
		_, err := c.Info(context.Background())
		return err == nil
	})
}
