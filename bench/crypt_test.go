package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"filippo.io/age"
)

// BenchmarkRestoreEncrypted (issue 13 "Speed"): the database of
// BenchmarkRestoreVsDD ($BENCH_DB_MB MiB, default 1024) replicated once to
// a plain and once to an age-encrypted file replica by the real binary, then
// restores of each, alternating, $BENCH_RUNS times (default 3); prints the
// wall times and the ratio encrypted/plain (target: within 1.5x). Run it
// with
//
//	go test -run '^$' -bench '^BenchmarkRestoreEncrypted$' -benchtime 1x -timeout 60m ./bench/
func BenchmarkRestoreEncrypted(b *testing.B) {
	work, bin := oneShot(b, "litestream-bench-crypt-")
	mib, runs := restoreScale(b)
	dbPath := filepath.Join(work, "bench.db")
	plain, enc := filepath.Join(work, "plain"), filepath.Join(work, "encrypted")
	out := filepath.Join(work, "out.db")

	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	key := filepath.Join(work, "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(work, "litestream.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "dbs:\n  - path: %s\n    replica:\n      url: file://%s\n      age: {recipients: [%s], identities: [%s]}\n",
		dbPath, enc, id.Recipient(), key), 0o644); err != nil {
		b.Fatal(err)
	}

	buildDB(b, dbPath, mib)
	start := time.Now()
	run(b, bin, "replicate", "-once", dbPath, "file://"+plain)
	fmt.Printf("plain replica: %.0f MiB, written in %s\n", float64(dirSize(b, plain))/(1<<20), since(start))
	start = time.Now()
	run(b, bin, "replicate", "-once", "-config", cfg)
	fmt.Printf("encrypted replica: %.0f MiB, written in %s\n", float64(dirSize(b, enc))/(1<<20), since(start))

	restore := func(replica string, env ...string) (time.Duration, time.Duration) {
		run(b, "sync")
		cmd := exec.Command(bin, "restore", "-integrity-check", "none", "-o", out, "file://"+replica)
		cmd.Env = append(os.Environ(), env...)
		t0 := time.Now()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("restore %s: %v\n%s", replica, err, o)
		}
		wall := time.Since(t0)
		if !sameFile(b, dbPath, out) {
			b.Fatalf("restored %s differs from %s", out, dbPath)
		}
		if err := os.Remove(out); err != nil {
			b.Fatal(err)
		}
		return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	loadBefore := loadavg()
	var sumPlain, sumEnc time.Duration
	for i := 0; i < runs; i++ {
		var p, e, pc, ec time.Duration
		if i%2 == 0 {
			p, pc = restore(plain, "LITESTREAM_AGE_IDENTITY_FILE=")
			e, ec = restore(enc, "LITESTREAM_AGE_IDENTITY_FILE="+key)
		} else {
			e, ec = restore(enc, "LITESTREAM_AGE_IDENTITY_FILE="+key)
			p, pc = restore(plain, "LITESTREAM_AGE_IDENTITY_FILE=")
		}
		sumPlain, sumEnc = sumPlain+p, sumEnc+e
		fmt.Printf("run %d: plain %.2f s (CPU %.2f s), encrypted %.2f s (CPU %.2f s), %.2fx\n", i+1, p.Seconds(), pc.Seconds(), e.Seconds(), ec.Seconds(), e.Seconds()/p.Seconds())
	}
	fmt.Printf("mean: plain %.2f s, encrypted %.2f s, encrypted/plain %.2fx; load average before %s, after %s; %d CPUs\n",
		(sumPlain / time.Duration(runs)).Seconds(), (sumEnc / time.Duration(runs)).Seconds(), sumEnc.Seconds()/sumPlain.Seconds(),
		loadBefore, loadavg(), runtime.NumCPU())
	b.ReportMetric(sumEnc.Seconds()/sumPlain.Seconds(), "encrypted/plain")
}
