package writer

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stallShim is an LD_PRELOAD library: the first fsync/fdatasync of a file
// whose name ends in "-wal" creates the file $STALL_MARKER and then blocks
// forever, so a test can SIGKILL the process inside COMMIT, after its frames
// reached the WAL file and before SQLite published them in the wal-index.
const stallShim = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int stall(int fd) {
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n < 4) return 0;
	path[n] = 0;
	if (strcmp(path + n - 4, "-wal") != 0) return 0;
	const char *marker = getenv("STALL_MARKER");
	if (!marker) return 0;
	int m = open(marker, O_CREAT | O_WRONLY, 0644);
	if (m >= 0) close(m);
	for (;;) pause();
}

int fsync(int fd) {
	static int (*real)(int);
	if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	stall(fd);
	return real(fd);
}

int fdatasync(int fd) {
	static int (*real)(int);
	if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	stall(fd);
	return real(fd);
}
`

// TestKilledInsideCommit: a real sqlite3 process is killed inside COMMIT
// (stalled in the WAL's fsync, its commit frame written, the wal-index not
// yet updated); then the application commits other rows over the same
// frames. The replica must equal what SQLite shows at every step.
func TestKilledInsideCommit(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the fsync-stall shim")
	}
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("sqlite3 shell not found")
	}
	e := newEnv(t)
	shim := filepath.Join(e.dir, "stall.so")
	src := filepath.Join(e.dir, "stall.c")
	if err := os.WriteFile(src, []byte(stallShim), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-o", shim, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("build shim: %v\n%s", err, out)
	}

	d := e.openSynced(100, 300)
	e.insertSync(d, 5, 300)
	_, before := e.walEnd()

	marker := filepath.Join(e.dir, "stalled")
	cmd := exec.Command(shell, e.path)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+shim, "STALL_MARKER="+marker)
	cmd.Stdin = strings.NewReader(`PRAGMA synchronous=FULL;
BEGIN;
INSERT INTO t(v) SELECT randomblob(700) FROM generate_series(1, 20);
UPDATE t SET v = randomblob(40) WHERE id % 5 = 0;
COMMIT;
`)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "sqlite3 to stall inside COMMIT", func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("sqlite3: %v\n%s", err, out.String())
	}
	if _, after := e.walEnd(); after.Offset <= before.Offset {
		t.Fatalf("the killed transaction left no committed-looking frames (log end %d, before %d)", after.Offset, before.Offset)
	}
	var n int
	if err := e.app.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 105 {
		t.Fatalf("SQLite shows %d rows (%v), want 105: the killed transaction is not committed", n, err)
	}

	e.syncCheck(d)
	for i := 0; i < 3; i++ {
		e.insert(1+i, 300) // overwrites the killed transaction's frames
		e.syncCheck(d)
	}
	if st := d.Status(); st.Snapshots != 1 {
		t.Errorf("%d snapshots, want 1", st.Snapshots)
	}
}
