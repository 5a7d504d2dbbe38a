package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checker compares every reader of the replica with the source once the
// application is quiet: a `litestream restore` (integrity check full), a
// new sqlite3 process reading through the extension, a sqlite3 process that
// has followed the replica through the extension since the start, and a
// `litestream restore -f` running since the start. Each reader at each check
// is one trial.
type checker struct {
	t        *testing.T
	w        *workload
	tally    *tally
	dir      string
	db       string
	replica  string   // a file replica's directory ("" for another backend)
	url      string   // its URL
	env      []string // extra environment of readers (credentials)
	bound    time.Duration
	live     *shellProc // the following VFS reader
	follow   *proc      // restore -f
	followTo string     // its output
	slowest  time.Duration
	checks   int
}

func newChecker(t *testing.T, w *workload, c *tally, dir, db, replica string) *checker {
	return &checker{t: t, w: w, tally: c, dir: dir, db: db, replica: replica, url: fileURL(replica), bound: pick(20*time.Second, 30*time.Second)}
}

// startFollowers starts the long-running readers (after the replica has its
// first file).
func (c *checker) startFollowers() {
	c.startLive()
	c.startFollow()
}

func (c *checker) startLive() {
	c.live = startShell(c.t, "vfs-live", append(vfsEnv(), c.env...), ":memory:")
	if _, err := c.live.run(vfsOpen(c.url), time.Minute); err != nil {
		c.t.Fatalf("open the replica through the extension: %v", err)
	}
}

func (c *checker) startFollow() {
	c.followTo = filepath.Join(c.dir, fmt.Sprintf("follow-%d.db", c.checks))
	c.follow = startLS(c.t, "restore -f", cleanEnv(), "restore", "-f", "-o", c.followTo, c.url)
}

type readerFn func(full bool) (dbState, error)

// readers returns the readers by name.
func (c *checker) readers() []struct {
	name string
	read readerFn
} {
	var stamp string
	var cached dbState
	var cachedErr error
	restoreOut := filepath.Join(c.dir, "check-restore.db")
	restore := func(full bool) (dbState, error) {
		s := replicaStamp(c.replica)
		if c.replica == "" {
			s = time.Now().String() // not listable here: restore each time
		}
		if s == stamp {
			if full && cachedErr == nil && cached.txlog == nil {
				cached, cachedErr = readFile(restoreOut, true)
			}
			return cached, cachedErr
		}
		stamp = s
		os.Remove(restoreOut)
		res := runLSEnv(c.t, c.env, 3*time.Minute, "restore", "-integrity-check", "full", "-o", restoreOut, c.url)
		if res.code != 0 {
			cached, cachedErr = dbState{}, fmt.Errorf("restore: %s", res)
		} else {
			cached, cachedErr = readFile(restoreOut, full)
		}
		return cached, cachedErr
	}
	vfsOnce := func(full bool) (dbState, error) { return readVFSEnv(c.env, c.url, full) }
	live := func(full bool) (dbState, error) {
		if c.live.exited() {
			return dbState{}, fmt.Errorf("the following VFS reader exited: %v: %s", c.live.err, c.live.stderr.String())
		}
		lines, err := c.live.run(stateScript(full, true), 2*time.Minute)
		if err != nil {
			return dbState{}, err
		}
		return parseState(strings.Join(lines, "\n"))
	}
	follow := func(full bool) (dbState, error) {
		if c.follow.Exited() {
			return dbState{}, fmt.Errorf("restore -f exited (%v): %s", c.follow.Err(), tail(c.follow.Out.String(), 1500))
		}
		b, _ := os.ReadFile(c.followTo + "-txid")
		got := strings.TrimSpace(string(b))
		if want := replicaMax(c.replica).String(); got != want {
			// Still applying: not comparable yet (reading a page
			// mid-apply would be torn).
			return dbState{extra: "at TXID " + got + ", replica at " + want}, nil
		}
		s, err := readFile(c.followTo, full)
		s.extra = "at TXID " + got
		return s, err
	}
	all := []struct {
		name string
		read readerFn
	}{{"restore", restore}, {"vfs", vfsOnce}}
	if c.live != nil {
		all = append(all, struct {
			name string
			read readerFn
		}{"vfs-live", live})
	}
	if c.follow != nil {
		all = append(all, struct {
			name string
			read readerFn
		}{"restore-f", follow})
	}
	return all
}

// check waits (up to the bound) for every reader to equal the quiet source,
// then judges the ones that do not. final: the daemon has stopped after its
// final sync, so anything missing is lost.
func (c *checker) check(label string, final bool) {
	c.t.Helper()
	c.checks++
	src, err := readSource(c.db, true)
	if err != nil {
		c.t.Fatalf("%s: read the source: %v", label, err)
	}
	start := time.Now()
	deadline := start.Add(c.bound)
	for _, r := range c.readers() {
		var got dbState
		var err error
		every := 100 * time.Millisecond
		if c.replica == "" {
			every = 500 * time.Millisecond
		}
		ok := waitFor(time.Until(deadline), every, func() bool {
			got, err = r.read(false)
			return err == nil && got.hash == src.hash
		})
		if ok {
			c.slowest = max(c.slowest, time.Since(start))
			c.tally.add(outcomeOK, "")
			continue
		}
		got, err = r.read(true)
		if err == nil && got.hash == src.hash {
			c.tally.add(outcomeOK, "")
			continue
		}
		outcome, why := outcomeWrong, ""
		if err != nil {
			why = "error: " + err.Error()
		} else if got.hash == "" {
			outcome, why = outcomeStuck, got.extra
			if final {
				outcome = outcomeLost
			}
		} else {
			outcome, why = c.w.judge(src, got, final)
			why = got.describe() + ": " + why
		}
		c.tally.add(outcome, fmt.Sprintf("%s, %s (source: %d txns): %s", label, r.name, len(src.txlog), why))
		c.t.Logf("%s: %s %s: %s", label, r.name, outcomeNames[outcome], why)
		// A reader that stopped is restarted so later checks still count.
		if r.name == "vfs-live" && c.live.exited() {
			c.startLive()
		}
		if r.name == "restore-f" && c.follow.Exited() {
			c.startFollow()
		}
	}
}

// finalSource verifies the source itself at the end: its content is its
// transactions' result, and every acked transaction is in it.
func (c *checker) finalSource() {
	c.t.Helper()
	src, err := readSource(c.db, true)
	if err != nil {
		c.t.Fatalf("read the source: %v", err)
	}
	want, err := c.w.replayHash(src.txlog)
	if err != nil {
		c.t.Fatal(err)
	}
	c.tally.add(map[bool]int{true: outcomeOK, false: outcomeWrong}[want == src.hash],
		fmt.Sprintf("the source's content (%.12s) is not the result of its %d transactions (%.12s)", src.hash, len(src.txlog), want))
	in := map[string]bool{}
	for _, id := range src.txlog {
		in[id] = true
	}
	c.w.mu.Lock()
	var missing []string
	for id := range c.w.acked {
		if !in[id] {
			missing = append(missing, id)
		}
	}
	n := len(c.w.acked)
	c.w.mu.Unlock()
	if len(missing) > 0 {
		c.tally.add(outcomeLost, fmt.Sprintf("%d transactions acked to the application are not in the source: %v", len(missing), missing[:min(10, len(missing))]))
	} else {
		c.tally.add(outcomeOK, "")
	}
	c.t.Logf("source: %d transactions, %d acked; slowest catch-up %s", len(src.txlog), n, c.slowest.Round(time.Millisecond))
}
