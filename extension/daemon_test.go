package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/writer"
)

// TestWriterDaemon runs the project's writer with its background loop
// (syncs, checkpoints, compactions into levels 1 and 2, snapshots and, in
// one case, retention that deletes files under the readers) beside an
// application that keeps writing, and reader processes querying the replica
// through the extension at default settings (with retention: listing every
// second, see below).
//
// Each application transaction bumps meta.seq, and the application records
// the aggregate it sees right after each commit, so every reader result can
// be checked against a state the primary really had: a reader's (seq,
// aggregate) must be one of those, one TXID must always mean one seq, and
// a read transaction must see one state from start to end.
func TestWriterDaemon(t *testing.T) {
	if _, err := os.Stat(pythonPath); err != nil {
		t.Skip("Debian's python3 is not installed")
	}
	for _, tc := range []struct {
		name      string
		retention bool // aggressive retention: files deleted while readers run
	}{
		{"compaction", false},
		{"compaction and retention", true},
	} {
		t.Run(tc.name, func(t *testing.T) { runWriterDaemon(t, tc.retention) })
	}
}

type daemonLine struct {
	TXID  uint64    `json:"txid"`
	Seq   int64     `json:"seq"`
	Agg   []float64 `json:"agg"`
	T     float64   `json:"t"`
	Error string    `json:"error"`
}

func runWriterDaemon(t *testing.T, retention bool) {
	const writeFor = 6 * time.Second
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "replica")
	path := filepath.Join(dir, "app.db")

	app := openApp(t, path, `create table t(id integer primary key, v int, pad blob);
		create table meta(seq int); insert into meta values (0)`)
	expected := map[int64]string{0: "0|0|0"}
	var expMu sync.Mutex
	committed := map[int64]time.Time{0: time.Now()}

	opts := writer.Options{
		MonitorInterval:    50 * time.Millisecond,
		SyncInterval:       100 * time.Millisecond,
		CheckpointInterval: 500 * time.Millisecond,
		MinCheckpointPageN: 200,
		Levels:             []time.Duration{time.Second, 3 * time.Second},
		SnapshotInterval:   4 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if retention {
		opts.L0Retention = 500 * time.Millisecond
		opts.RetentionCheckInterval = 250 * time.Millisecond
		opts.RetentionGrace = 250 * time.Millisecond
		opts.SnapshotRetention = 2 * time.Second
	}
	w := startWriter(t, path, root, opts)
	w.Start(ctx)

	type reader struct {
		mode string
		cmd  *exec.Cmd
		out  *bytes.Buffer // the reader's JSON lines
		log  *bytes.Buffer // its stderr: the extension's log lines
	}
	var readers []*reader
	modes := []string{"short", "short", "short"}
	if !retention {
		modes = append(modes, "long")
	}
	for _, mode := range modes {
		r := &reader{mode: mode, out: new(bytes.Buffer), log: new(bytes.Buffer)}
		r.cmd = exec.Command(pythonPath, "testdata/daemon_reader.py", extPath, "file://"+root, fmt.Sprint((writeFor + 3*time.Second).Seconds()), mode)
		r.cmd.Env = cleanEnv()
		if mode == "long" {
			r.cmd.Env = append(r.cmd.Env, "LITESTREAM_CACHE_SIZE=64KiB")
		}
		if retention {
			// A level-0 retention of 500 ms deletes level-0 files before a
			// reader polling every second reads them by name, so such a
			// replica's readers must list as often as they poll
			// (list_interval at most l0-retention; the default, one minute,
			// is for Litestream's default l0-retention of five minutes).
			r.cmd.Env = append(r.cmd.Env, "LITESTREAM_LIST_INTERVAL=1s")
		}
		r.cmd.Stdout, r.cmd.Stderr = r.out, r.log
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}

	// The application: inserts, updates, deletes, with growing and
	// shrinking pages, one transaction every ~10 ms.
	var seq int64
	end := time.Now().Add(writeFor)
	for i := 1; time.Now().Before(end); i++ {
		seq++
		var stmt string
		switch {
		case i%10 == 9:
			stmt = "delete from t where id % 4 = 0"
		case i%10 == 5:
			stmt = "update t set v = v + 1 where id % 3 = 1"
		default:
			stmt = fmt.Sprintf("insert into t(v, pad) with recursive s(x) as (select 1 union all select x+1 from s where x < 10) select x*%d, randomblob(%d) from s", i, 50+i%700)
		}
		tx, err := app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(stmt); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("update meta set seq = ?", seq); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var n, sv, sp float64
		if err := app.QueryRow("select count(*), total(v), total(length(pad)) from t").Scan(&n, &sv, &sp); err != nil {
			t.Fatal(err)
		}
		expMu.Lock()
		expected[seq] = fmt.Sprintf("%v|%v|%v", n, sv, sp)
		committed[seq] = time.Now()
		expMu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	finalSeq := seq
	finalAt := committed[finalSeq]

	for i, r := range readers {
		if err := r.cmd.Wait(); err != nil {
			t.Fatalf("reader %d: %v\n%s\n%s", i, err, r.out, r.log)
		}
	}
	st := w.Status()
	levels := map[int]int{}
	for level := 0; level <= 9; level++ {
		infos, err := file.New(root).LTXFiles(ctx, level, 0)
		if err != nil {
			t.Fatal(err)
		}
		levels[level] = len(infos)
	}
	t.Logf("writer at TXID %d, %d snapshots; replica files by level: %v", st.TXID, st.Snapshots, levels)

	seqOf := map[uint64]int64{} // TXID -> seq, across readers
	for i, r := range readers {
		var ok, ioErrs int
		var lastTXID uint64
		var first *daemonLine
		var sawFinal time.Time
		sc := bufio.NewScanner(r.out)
		for sc.Scan() {
			var l daemonLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("reader %d: %q: %v", i, sc.Text(), err)
			}
			if l.Error != "" {
				if !retention || !strings.Contains(l.Error, "disk I/O error") {
					t.Errorf("reader %d (%s): %s", i, r.mode, l.Error)
				}
				ioErrs++
				continue
			}
			got := fmt.Sprintf("%v|%v|%v", l.Agg[0], l.Agg[1], l.Agg[2])
			if want, ok := expected[l.Seq]; !ok || got != want {
				t.Fatalf("reader %d (%s) at TXID %d saw seq %d with %s; the primary had %s", i, r.mode, l.TXID, l.Seq, got, want)
			}
			if s, ok := seqOf[l.TXID]; ok && s != l.Seq {
				t.Fatalf("TXID %d read as seq %d and as seq %d", l.TXID, s, l.Seq)
			}
			seqOf[l.TXID] = l.Seq
			switch r.mode {
			case "long":
				if first == nil {
					first = &l
				} else if l.TXID != first.TXID || l.Seq != first.Seq {
					t.Fatalf("long read transaction moved from TXID %d (seq %d) to TXID %d (seq %d)", first.TXID, first.Seq, l.TXID, l.Seq)
				}
			default:
				if l.TXID < lastTXID {
					t.Fatalf("reader %d went back from TXID %d to %d", i, lastTXID, l.TXID)
				}
				lastTXID = l.TXID
				if l.Seq == finalSeq && sawFinal.IsZero() {
					sawFinal = time.Unix(0, int64(l.T*1e9))
				}
			}
			ok++
		}
		t.Logf("reader %d (%s): %d correct results, %d I/O errors", i, r.mode, ok, ioErrs)
		if ok < 10 {
			t.Errorf("reader %d: only %d results", i, ok)
		}
		if r.mode == "short" {
			if sawFinal.IsZero() {
				t.Errorf("reader %d never saw the final state (seq %d)", i, finalSeq)
			} else if d := sawFinal.Sub(finalAt); d > 3*time.Second {
				// The poller runs every second (the default) and the
				// writer here syncs every 100 ms, so 2 s is the design
				// bound; 3 s leaves room for a loaded 2-core CI machine.
				t.Errorf("reader %d saw the final state %v after its commit", i, d)
			} else {
				t.Logf("reader %d saw the final state %v after its commit", i, d.Round(time.Millisecond))
			}
		}
	}
	switch {
	case !retention && (levels[1] == 0 || levels[2] == 0):
		t.Errorf("the writer did not compact during the test: %v", levels)
	case retention && levels[0] > int(st.TXID)/2:
		t.Errorf("retention deleted no level-0 files during the test: %v", levels)
	}
}
