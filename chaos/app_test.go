package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// appEnv is the environment of an application shell (no shim).
func appEnv() []string { return cleanEnv() }

// appPrelude: every application connection waits for locks and syncs
// fully, so a commit that returned is durable.
const appPrelude = ".timeout 60000\nPRAGMA synchronous=FULL;"

// createDB creates the source database in WAL mode with the schema.
func createDB(t *testing.T, dbPath string) {
	t.Helper()
	if _, err := shellOnce(appEnv(), dbPath, "PRAGMA page_size=4096;\nPRAGMA journal_mode=WAL;\n"+schemaSQL+"\n", time.Minute); err != nil {
		t.Fatal(err)
	}
}

// commitOnce commits one transaction from a new sqlite3 process and
// records its ack.
func commitOnce(w *workload, dbPath, id, sql string) error {
	out, err := shellOnce(appEnv(), dbPath, appPrelude+"\n"+txnScript(id, sql)+"\n", 2*time.Minute)
	w.ackLines(strings.Split(out, "\n"))
	return err
}

// bgWriter is an application process committing transactions (small ones
// by default), paced, until stopped. An error (disk full, ...) is recorded and the process
// restarted.
type bgWriter struct {
	t      *testing.T
	w      *workload
	dbPath string
	pace   time.Duration
	gen    func() (id, sql string) // the next transaction
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	errs   []string
	n      int // transactions acked
}

func startWriter(t *testing.T, w *workload, dbPath string, pace time.Duration) *bgWriter {
	return startWriterGen(t, w, dbPath, pace, func() (string, string) { return w.mixed("w") })
}

// startWriterGen is startWriter committing gen's transactions; pace 0
// commits them back to back.
func startWriterGen(t *testing.T, w *workload, dbPath string, pace time.Duration, gen func() (id, sql string)) *bgWriter {
	b := &bgWriter{t: t, w: w, dbPath: dbPath, pace: pace, gen: gen, stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	return b
}

func (b *bgWriter) stopped() bool { return testsupport.Closed(b.stop) }

func (b *bgWriter) loop() {
	defer close(b.done)
	for !b.stopped() {
		sh := startShell(b.t, "writer", appEnv(), b.dbPath)
		_, err := sh.run(appPrelude, time.Minute)
		for err == nil && !b.stopped() {
			id, sql := b.gen()
			var lines []string
			lines, err = sh.run(txnScript(id, sql), 2*time.Minute)
			b.w.ackLines(lines)
			if err == nil {
				b.mu.Lock()
				b.n++
				b.mu.Unlock()
			}
			if b.pace > 0 {
				time.Sleep(time.Duration(b.w.intn(int(b.pace)) + 1)) // pacing of the load
			}
		}
		if err != nil {
			b.mu.Lock()
			b.errs = append(b.errs, err.Error())
			b.mu.Unlock()
			sh.kill()
			select {
			case <-b.stop:
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err := sh.close(time.Minute); err != nil {
			b.mu.Lock()
			b.errs = append(b.errs, err.Error())
			b.mu.Unlock()
		}
	}
}

// halt stops the writer after its current transaction and returns the
// errors it met.
func (b *bgWriter) halt() []string {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errs
}

func (b *bgWriter) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// victim is an application process run with the fsync-stall shim.
type victim struct {
	sh  *shellProc
	dir string
}

func startVictim(t *testing.T, dir, dbPath string) *victim {
	t.Helper()
	sdir, err := os.MkdirTemp(dir, "stall-")
	if err != nil {
		t.Fatal(err)
	}
	v := &victim{dir: sdir}
	v.sh = startShell(t, "victim", cleanEnv("LD_PRELOAD="+shimPath, "CHAOS_STALL_DIR="+sdir), dbPath)
	if _, err := v.sh.run(appPrelude, time.Minute); err != nil {
		t.Fatal(err)
	}
	return v
}

// arm makes the nth next fsync of a file ending in suffix stall; with
// frames, syncs of a lone WAL header are not counted (testdata/fsyncstall.c).
func (v *victim) arm(suffix string, nth int, frames bool) {
	mode := "all"
	if frames {
		mode = "frames"
	}
	if err := os.WriteFile(filepath.Join(v.dir, "arm"), fmt.Appendf(nil, "%s %d %s\n", suffix, nth, mode), 0o644); err != nil {
		panic(err)
	}
}

// waitStall waits until the process stalls in fsync (returning what the
// shim wrote), prints line, or exits.
func (v *victim) waitStall(line string, timeout time.Duration) (stalled string, lines []string, done bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(v.dir, "stalled")); err == nil {
			return strings.TrimSpace(string(b)), lines, false
		}
		select {
		case l, ok := <-v.sh.lines:
			if !ok {
				return "", lines, true
			}
			lines = append(lines, l)
			if l == line {
				return "", lines, true
			}
		case <-time.After(2 * time.Millisecond):
		}
	}
	return "", lines, false
}

// killCollect SIGKILLs the process and returns the output it had printed.
func (v *victim) killCollect() []string {
	if !v.sh.exited() {
		_ = v.sh.cmd.Process.Kill()
	}
	var lines []string
	for l := range v.sh.lines {
		lines = append(lines, l)
	}
	<-v.sh.done
	os.Remove(filepath.Join(v.dir, "arm"))
	return lines
}
