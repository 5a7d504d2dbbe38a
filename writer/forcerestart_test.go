package writer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// inTxn reports whether the connection *pc is inside a transaction.
func inTxn(t *testing.T, c *sql.Conn) bool {
	t.Helper()
	var in bool
	if err := c.Raw(func(dc any) error {
		in = !dc.(*sqlite3.SQLiteConn).AutoCommit()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return in
}

// writeLockFree reports whether another connection can take SQLite's write
// lock at once.
func (e *env) writeLockFree() bool {
	e.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+e.path+"?_busy_timeout=0")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		if isBusy(err) {
			return false
		}
		e.t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		e.t.Fatal(err)
	}
	return true
}

// prepareForcedRestart opens a writer whose next checkpoint forces a log
// restart, with frames committed during its first sync so that the restart
// stages a file of its own.
func prepareForcedRestart(e *env) *DB {
	e.t.Helper()
	opts := e.opts()
	opts.MinCheckpointPageN = 5
	d := e.openSyncedWith(opts, 50, 300)
	e.insert(20, 300)
	txid := d.Status().TXID
	e.client.set(func(c *faultyClient) {
		c.writeHook = func(level int, id ltx.TXID) {
			if level == remote.L0 && id == txid+1 {
				e.insert(10, 300)
			}
		}
	})
	gen, _ := e.walHeader()
	d.mu.Lock()
	d.ckptGen = gen.Salts() // a passive checkpoint already ran in this generation
	d.mu.Unlock()
	return d
}

// TestForcedRestartInterrupted: the forced restart's context is cancelled,
// or one of its steps fails, at each step. Afterwards SQLite's write lock is
// free, none of our connections is left inside a transaction but the pin,
// which holds its read transaction again (I1); and when the application then
// checkpoints and restarts the log as often as it can, every transaction
// still reaches the replica.
func TestForcedRestartInterrupted(t *testing.T) {
	errInjected := errors.New("injected failure")
	for _, step := range []string{"locked", "staged", "checkpointed", "pin", "unlocked"} {
		for _, mode := range []string{"cancel", "fail"} {
			t.Run(step+"/"+mode, func(t *testing.T) {
				e := newEnv(t)
				d := prepareForcedRestart(e)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var hit bool
				d.hook = func(_ context.Context, s string) error {
					if s != step {
						return nil
					}
					hit = true
					if mode == "cancel" {
						cancel()
						return nil
					}
					return errInjected
				}
				err := d.Checkpoint(ctx)
				t.Logf("checkpoint: %v", err)
				d.hook = nil
				e.client.set(func(c *faultyClient) { c.writeHook = nil })
				if !hit {
					t.Fatalf("the forced restart never reached step %q", step)
				}
				if !e.writeLockFree() {
					t.Fatal("SQLite's write lock is still held")
				}
				d.mu.Lock()
				lockTxn, spareTxn, pinTxn := inTxn(t, d.lock), inTxn(t, d.spare), inTxn(t, d.pin)
				d.mu.Unlock()
				if lockTxn || spareTxn {
					t.Errorf("a transaction is left open: lock %v, spare %v", lockTxn, spareTxn)
				}
				if !pinTxn && !(step == "pin" && mode == "fail") {
					t.Error("the pin holds no read transaction")
				}

				// With no pin, the application can backfill and restart the
				// log at will: frames committed after the forced restart
				// would be overwritten before the next sync.
				for i := 0; i < 3; i++ {
					e.insert(3, 300)
					e.exec(`PRAGMA wal_checkpoint(PASSIVE)`)
				}
				e.insertSyncCheck(d, 3, 300)
				e.close(d)
				e.checkReplica()
				d2 := e.open(e.opts())
				e.insertSyncCheck(d2, 2, 300)
			})
		}
	}
}

// TestCloseDuringForcedRestart: Close is called while the background loop is
// inside a forced restart, at each step. Close returns, SQLite's write lock
// is free, the final sync uploaded everything, and a writer opened later
// continues the replica.
func TestCloseDuringForcedRestart(t *testing.T) {
	for _, step := range []string{"locked", "staged", "checkpointed", "pin", "unlocked"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			d := prepareForcedRestart(e)
			d.opts.MonitorInterval = 5 * time.Millisecond
			d.opts.SyncInterval = 5 * time.Millisecond
			reached := make(chan struct{})
			var once sync.Once
			d.hook = func(ctx context.Context, s string) error {
				if s == step {
					once.Do(func() { close(reached) })
					<-ctx.Done() // until Close cancels the loop
				}
				return nil
			}
			d.Start(context.Background())
			select {
			case <-reached:
			case <-time.After(30 * time.Second):
				t.Fatalf("the loop never reached step %q of a forced restart", step)
			}
			if err := d.Close(context.Background()); err != nil {
				t.Fatalf("close: %v", err)
			}
			e.client.set(func(c *faultyClient) { c.writeHook = nil })
			if !e.writeLockFree() {
				t.Fatal("SQLite's write lock is still held after Close")
			}
			e.checkReplica()
			for i := 0; i < 3; i++ {
				e.insert(3, 300)
				e.exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
			d2 := e.open(e.opts())
			e.syncCheck(d2)
		})
	}
}

// TestForcedRestartConcurrentApp: at each step of a forced restart another
// connection of the application checkpoints in each mode, or writes and
// closes, or a sqlite3 process reads the database. Actions that need the
// write lock run concurrently (they wait for ours). Every transaction
// reaches the replica, and the replica stays continuable.
func TestForcedRestartConcurrentApp(t *testing.T) {
	shell, _ := exec.LookPath("sqlite3")
	actions := []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE", "write-close", "sqlite3-read"}
	for _, step := range []string{"locked", "staged", "checkpointed", "pin", "unlocked"} {
		for _, action := range actions {
			t.Run(step+"/"+action, func(t *testing.T) {
				if action == "sqlite3-read" && shell == "" {
					t.Skip("sqlite3 shell not found")
				}
				e := newEnv(t)
				d := prepareForcedRestart(e)
				other, err := sql.Open("sqlite3", "file:"+e.path+"?_busy_timeout=500")
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				other.SetMaxOpenConns(1)
				var wg sync.WaitGroup
				errc := make(chan error, 1)
				run := func() {
					defer wg.Done()
					var err error
					switch action {
					case "write-close":
						if _, err = other.Exec(`INSERT INTO t(v) VALUES(randomblob(500))`); err == nil {
							err = other.Close()
						}
					case "sqlite3-read":
						var out []byte
						out, err = exec.Command(shell, e.path, "SELECT count(*) FROM t").CombinedOutput()
						if err != nil {
							err = fmt.Errorf("%v: %s", err, out)
						}
					default:
						var busy, log, ckpt int64
						err = other.QueryRow(`PRAGMA wal_checkpoint(`+action+`)`).Scan(&busy, &log, &ckpt)
						t.Logf("application checkpoint %s at %s: busy %d log %d checkpointed %d", action, step, busy, log, ckpt)
					}
					if err != nil && !isBusy(err) {
						errc <- err
					}
				}
				d.hook = func(_ context.Context, s string) error {
					if s == step {
						wg.Add(1)
						go run()
						if s == "unlocked" {
							wg.Wait() // nothing of ours waits for it
						}
					}
					return nil
				}
				if err := d.Checkpoint(context.Background()); err != nil {
					t.Errorf("checkpoint: %v", err)
				}
				d.hook = nil
				wg.Wait()
				e.client.set(func(c *faultyClient) { c.writeHook = nil })
				select {
				case err := <-errc:
					t.Fatalf("application %s: %v", action, err)
				default:
				}
				for i := 0; i < 3; i++ {
					e.insertSyncCheck(d, 3, 300)
					e.exec(`PRAGMA wal_checkpoint(PASSIVE)`)
				}
				if err := d.Checkpoint(context.Background()); err != nil {
					t.Errorf("checkpoint: %v", err)
				}
				e.insert(3, 300)
				e.close(d)
				e.checkReplica()
				d2 := e.openContinuing()
				e.insertSyncCheck(d2, 2, 300)
			})
		}
	}
}

// modeRecorder is an Observer that records the mode of each checkpoint.
type modeRecorder struct {
	mu    sync.Mutex
	modes []string
}

func (r *modeRecorder) SyncDone(time.Duration, error) {}
func (r *modeRecorder) RetentionDone(L0Census)        {}
func (r *modeRecorder) CheckpointDone(mode string, _ time.Duration, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.modes = append(r.modes, mode)
}

// TestCheckpointModesObserved: the observer (and so the metrics'
// mode label) tells a normal passive checkpoint from the one a forced
// restart runs under the write lock.
func TestCheckpointModesObserved(t *testing.T) {
	e := newEnv(t)
	rec := &modeRecorder{}
	opts := e.opts()
	opts.Observer = rec
	opts.MinCheckpointPageN = 5
	d := e.openSyncedWith(opts, 50, 300)
	e.checkpoint(d)
	// A second checkpoint in the same log generation with
	// MinCheckpointPageN frames forces a restart (an application that never
	// pauses keeps the generation; here it is set as prepareForcedRestart does).
	e.insertSync(d, 20, 300)
	gen, _ := e.walHeader()
	d.mu.Lock()
	d.ckptGen = gen.Salts()
	d.mu.Unlock()
	e.checkpoint(d)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.modes) == 0 || rec.modes[0] != CheckpointPassive {
		t.Fatalf("modes %v: want a PASSIVE checkpoint first", rec.modes)
	}
	if !slices.Contains(rec.modes, CheckpointRestart) {
		t.Fatalf("modes %v: the forced restart is not reported as %s", rec.modes, CheckpointRestart)
	}
}
