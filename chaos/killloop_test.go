package chaos

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestDaemonKill: `litestream replicate` is SIGKILLed under load (at random
// moments, some while a sync is staged or uploading) and restarted.
func TestDaemonKill(t *testing.T) {
	runKillLoop(t, false, true, pick(12, 120))
}

type killLoop struct {
	t       *testing.T
	rng     *rand.Rand
	w       *workload
	dir     string
	db      string
	replica string
	cfg     string
	daemon  *proc
	starts  int
	stats   map[string]int
}

func runKillLoop(t *testing.T, appKills, daemonKills bool, cycles int) {
	c, _, rng, dir := startTrials(t)
	k := &killLoop{t: t, rng: rng, w: newWorkload(rng), dir: dir, db: filepath.Join(dir, "app.db"), replica: filepath.Join(dir, "replica"), stats: map[string]int{}}
	createDB(t, k.db)
	k.cfg = daemonYAML(t, dir, k.db, fileURL(k.replica), "")
	k.startDaemon()
	if !waitFor(time.Minute, 20*time.Millisecond, func() bool { return replicaMax(k.replica) > 0 }) {
		t.Fatalf("no first sync within a minute:\n%s", tail(k.daemon.Out.String(), 3000))
	}
	ch := newChecker(t, k.w, c, dir, k.db, k.replica)
	ch.startFollowers()

	for cycle := 1; cycle <= cycles; cycle++ {
		bg := startWriter(t, k.w, k.db, 15*time.Millisecond)
		k.pause(100, 600)
		what := []string{}
		if appKills {
			what = append(what, k.appKill(daemonKills))
		}
		if daemonKills && (!appKills || k.rng.IntN(2) == 0) {
			// A large transaction in flight makes a long sync to kill.
			large := make(chan error, 1)
			id, sql := k.w.large("L", 500+k.rng.IntN(2000))
			go func() { large <- commitOnce(k.w, k.db, id, sql) }()
			k.pause(0, 500)
			what = append(what, k.daemonKill())
			if err := <-large; err != nil {
				t.Errorf("cycle %d: large transaction: %v", cycle, err)
			}
		}
		k.pause(50, 300)
		if errs := bg.halt(); len(errs) > 0 {
			t.Errorf("cycle %d: the application's writer failed: %s", cycle, strings.Join(errs, "; "))
		}
		if k.daemon.Exited() {
			t.Errorf("cycle %d: replicate exited by itself (%v):\n%s", cycle, k.daemon.Err(), tail(k.daemon.Out.String(), 3000))
			k.startDaemon()
		}
		label := fmt.Sprintf("cycle %d (%s)", cycle, strings.Join(what, "; "))
		t.Log(label)
		ch.check(label, false)
	}

	if code := k.daemon.Term(2 * time.Minute); code != 0 {
		t.Errorf("replicate exited %d after SIGTERM:\n%s", code, tail(k.daemon.Out.String(), 3000))
	} else if !strings.Contains(k.daemon.Out.String(), "final sync done") {
		t.Errorf("replicate's log lacks the final sync:\n%s", tail(k.daemon.Out.String(), 3000))
	}
	ch.check("final", true)
	ch.finalSource()
	var keys []string
	for key, n := range k.stats {
		keys = append(keys, fmt.Sprintf("%s=%d", key, n))
	}
	sort.Strings(keys)
	t.Logf("daemon starts %d; %s", k.starts, strings.Join(keys, " "))
}

func (k *killLoop) startDaemon() {
	k.daemon = startLS(k.t, "replicate", cleanEnv(), "replicate", "-config", k.cfg)
	k.starts++
}

// pause lets the load run for a random time (pacing, not synchronisation).
func (k *killLoop) pause(loMS, hiMS int) {
	time.Sleep(time.Duration(loMS+k.rng.IntN(hiMS-loMS+1)) * time.Millisecond)
}

// daemonKill SIGKILLs the daemon at a random moment (or, half the time, as
// soon as a sync is staged or uploading) and restarts it after a random
// pause while writes go on.
func (k *killLoop) daemonKill() string {
	what := "daemon killed"
	if k.rng.IntN(2) == 0 {
		busy := waitFor(2*time.Second, time.Millisecond, func() bool { return k.syncBusy() })
		if busy {
			what = "daemon killed mid-sync"
		}
	}
	k.daemon.Kill()
	k.stats[what]++
	k.pause(0, 400)
	k.startDaemon()
	return what
}

// syncBusy: a staged LTX file or an upload's temporary file exists.
func (k *killLoop) syncBusy() bool {
	staged, _ := filepath.Glob(filepath.Join(k.dir, ".app.db-litestream", "*.tmp"))
	uploading, _ := filepath.Glob(filepath.Join(k.replica, "ltx", "*", ".*"))
	return len(staged)+len(uploading) > 0
}

// appKill runs one application process with the shim, kills it in one of
// the ways below, then commits different rows from another process.
func (k *killLoop) appKill(daemonKills bool) string {
	t, w, rng := k.t, k.w, k.rng
	v := startVictim(t, k.dir, k.db)
	modes := []string{"commit", "commit", "commit", "random", "begin", "spill", "spill-commit", "vacuum", "checkpoint"}
	mode := modes[rng.IntN(len(modes))]
	what := mode
	stalledKill := func(line string) {
		stalled, lines, done := v.waitStall(line, 20*time.Second)
		w.ackLines(lines)
		switch {
		case stalled != "":
			f := strings.Fields(stalled)
			what += " stalled in " + f[len(f)-1] + " of " + filepath.Base(f[1])
			k.stats["stalls"]++
			if daemonKills && rng.IntN(2) == 0 {
				// The nastiest moment for the daemon to start: the
				// stalled transaction's frames are in the WAL file.
				what += ", " + k.daemonKill() + " and restarted while stalled"
			}
			k.pause(0, 200)
		case done:
			what += " (completed before any stall)"
		default:
			what += " (neither stalled nor completed in 20s)"
		}
	}
	switch mode {
	case "commit":
		var id, sql string
		if rng.IntN(4) == 0 {
			id, sql = w.large("v", 200+rng.IntN(800))
		} else {
			id, sql = w.small("v")
		}
		if _, err := v.sh.run("BEGIN IMMEDIATE;\n"+sql, time.Minute); err != nil {
			t.Fatalf("victim: %v", err)
		}
		// Mostly after the commit's frames are written; sometimes at the
		// first sync, which after a log restart is the lone header's.
		v.arm("-wal", 1, rng.IntN(4) > 0)
		stmt, line := v.sh.newMark()
		v.sh.send("COMMIT;\nSELECT 'ack:" + id + "';\n" + stmt)
		stalledKill(line)
	case "random":
		var b strings.Builder
		for range 5 + rng.IntN(30) {
			id, sql := w.mixed("v")
			if rng.IntN(6) == 0 {
				id, sql = w.large("v", 100+rng.IntN(500))
			}
			b.WriteString(txnScript(id, sql) + "\n")
		}
		v.sh.send(b.String())
		k.pause(0, 400)
	case "begin":
		_, sql := w.small("v")
		if _, err := v.sh.run("BEGIN IMMEDIATE;\n"+sql, time.Minute); err != nil {
			t.Fatalf("victim: %v", err)
		}
	case "spill", "spill-commit":
		if _, err := v.sh.run("PRAGMA cache_size=20;", time.Minute); err != nil {
			t.Fatalf("victim: %v", err)
		}
		before := walSize(k.db)
		id, sql := w.large("v", 1000+rng.IntN(3000))
		if mode == "spill" {
			v.sh.send(txnScript(id, sql))
			k.pause(0, 700)
		} else {
			if _, err := v.sh.run("BEGIN IMMEDIATE;\n"+sql, 2*time.Minute); err != nil {
				t.Fatalf("victim: %v", err)
			}
			v.arm("-wal", 1, true)
			stmt, line := v.sh.newMark()
			v.sh.send("COMMIT;\nSELECT 'ack:" + id + "';\n" + stmt)
			stalledKill(line)
		}
		if walSize(k.db) > before {
			what += " (WAL grew)"
		}
	case "vacuum":
		stmt, line := v.sh.newMark()
		if rng.IntN(2) == 0 {
			v.arm("-wal", 1, rng.IntN(2) == 0)
			v.sh.send("VACUUM;\n" + stmt)
			stalledKill(line)
		} else {
			v.sh.send("VACUUM;\n" + stmt)
			k.pause(0, 300)
		}
	case "checkpoint":
		ckpt := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"}[rng.IntN(4)]
		what += " " + ckpt
		stmt, line := v.sh.newMark()
		if rng.IntN(3) > 0 {
			suffix := []string{"app.db", "-wal"}[rng.IntN(2)]
			v.arm(suffix, 1, false)
			v.sh.send("PRAGMA wal_checkpoint(" + ckpt + ");\n" + stmt)
			stalledKill(line)
		} else {
			v.sh.send("PRAGMA wal_checkpoint(" + ckpt + ");\n" + stmt)
			k.pause(0, 100)
		}
	}
	w.ackLines(v.killCollect())
	k.stats["kills "+mode]++
	if n, _ := walOrphans(k.db); n > 0 {
		what += fmt.Sprintf(", %d unpublished commit frame(s) left in the WAL", n)
		k.stats["orphan commits"]++
	}
	// Another process commits different rows over the same WAL frames.
	id, sql := w.small("a")
	if err := commitOnce(w, k.db, id, sql); err != nil {
		t.Errorf("commit after the kill: %v", err)
	}
	return what
}
