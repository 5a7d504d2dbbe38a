// fsyncstall: an LD_PRELOAD shim that stalls a process inside fsync or
// fdatasync so that a test can SIGKILL it there (for SQLite in WAL mode with
// synchronous=FULL: after COMMIT wrote its frames to the WAL file but before
// it published them in the wal-index).
//
// Built by the chaos tests: gcc -shared -fPIC -O2 -o fsyncstall.so fsyncstall.c -ldl
//
// Control, per process, through the directory $CHAOS_STALL_DIR:
//   arm      if present, holds "SUFFIX N [frames]": the N-th fsync/fdatasync
//            (counted from when arm appeared) of a file whose path ends with
//            SUFFIX stalls. With "frames", a sync whose file was last written
//            at offset 0 (a WAL header, written and synced alone when the log
//            restarts) is not counted, so "-wal 1 frames" stalls a commit
//            after its frames are written. Absent: every call goes to libc.
//   stalled  written (atomically, via stalled.tmp) by the stalling process:
//            "PID PATH CALL" — then the process sleeps until it is killed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int armed_count;

// last_offset[fd] is the offset of the last pwrite64 to fd (+1; 0: none).
#define MAX_FD 4096
static long long last_offset[MAX_FD];

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
	static ssize_t (*real)(int, const void *, size_t, off64_t);
	if (real == NULL) real = (ssize_t (*)(int, const void *, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
	if (fd >= 0 && fd < MAX_FD) last_offset[fd] = (long long)off + 1;
	return real(fd, buf, n, off);
}

static int should_stall(int fd, const char *call) {
	const char *dir = getenv("CHAOS_STALL_DIR");
	if (dir == NULL) return 0;
	char arm[PATH_MAX];
	snprintf(arm, sizeof arm, "%s/arm", dir);
	FILE *f = fopen(arm, "r");
	if (f == NULL) return 0;
	char suffix[256] = {0};
	char mode[32] = {0};
	int nth = 1;
	int n = fscanf(f, "%255s %d %31s", suffix, &nth, mode);
	fclose(f);
	if (n < 1) return 0;
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t len = readlink(link, path, sizeof path - 1);
	if (len < 0) return 0;
	path[len] = 0;
	size_t ls = (size_t)len, lx = strlen(suffix);
	if (lx > ls || strcmp(path + ls - lx, suffix) != 0) return 0;
	if (strcmp(mode, "frames") == 0 && fd >= 0 && fd < MAX_FD && last_offset[fd] == 1) return 0;
	if (++armed_count < nth) return 0;

	char tmp[PATH_MAX], done[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/stalled.tmp", dir);
	snprintf(done, sizeof done, "%s/stalled", dir);
	FILE *m = fopen(tmp, "w");
	if (m != NULL) {
		fprintf(m, "%d %s %s\n", (int)getpid(), path, call);
		fclose(m);
		rename(tmp, done);
	}
	return 1;
}

static void stall(void) {
	for (;;) pause();
}

int fsync(int fd) {
	static int (*real)(int);
	if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (should_stall(fd, "fsync")) stall();
	return real(fd);
}

int fdatasync(int fd) {
	static int (*real)(int);
	if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (should_stall(fd, "fdatasync")) stall();
	return real(fd);
}
