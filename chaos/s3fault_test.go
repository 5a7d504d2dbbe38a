package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/internal/testserver"
)

func createBucket(t *testing.T, endpoint, bucket string) {
	t.Helper()
	testserver.CreateMinIOBucket(t, endpoint, bucket)
}

// TestS3Faults replicates to MinIO through internal/faultproxy: 500 and
// 503 answers, connection resets (also after the server applied a write),
// truncated and slow bodies — and, in the long profile, stalls past the
// client's timeout. While faults are on, the application keeps writing;
// once they stop, the replica must catch up within the bound and every
// reader equal the source. Then, with 20% of requests failing again,
// restores must still succeed and equal the source (a failed one counts as
// stuck: transient faults must be retried), and the VFS must return the
// source or a clear error.
func TestS3Faults(t *testing.T) {
	c, seed, rng, dir := startTrials(t)
	minio := testserver.StartMinIO(t, mkdir(dir, "minio"))
	endpoint := minio.Endpoint
	createBucket(t, endpoint, "chaos")
	rates := faultproxy.Transient(0.2).Plus(faultproxy.Rates{faultproxy.SlowBody: 0.05})
	if long {
		rates = rates.Plus(faultproxy.Stalls(0.005))
	}
	proxy := faultproxy.StartT(t, endpoint, faultproxy.Options{Seed: seed, Rates: rates, Disabled: true})
	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + testserver.MinIOUser, "LITESTREAM_SECRET_ACCESS_KEY=" + testserver.MinIOPassword, "AWS_REGION=us-east-1"}
	url := "s3://chaos/app?endpoint=" + proxy.Addr() + "&force-path-style=true"

	db := filepath.Join(dir, "app.db")
	w := newWorkload(rng)
	createDB(t, db)
	cfg := daemonYAML(t, dir, db, url, "")
	startDaemon := func() *proc { return startLS(t, "replicate", cleanEnv(creds...), "replicate", "-config", cfg) }
	d := startDaemon()
	ch := newChecker(t, w, c, dir, db, "")
	ch.url, ch.env = url, creds
	ch.check("before faults", false)
	ch.startLive()

	cycles := pick(2, 20)
	for cycle := 1; cycle <= cycles; cycle++ {
		// Faults on while the application writes.
		proxy.SetEnabled(true)
		bg := startWriter(t, w, db, 20*time.Millisecond)
		for range 2 {
			id, sql := w.large("L", 300+rng.IntN(1500))
			if err := commitOnce(w, db, id, sql); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond) // pacing
		}
		if errs := bg.halt(); len(errs) > 0 {
			t.Fatalf("writer: %v", errs)
		}
		if d.Exited() {
			t.Fatalf("replicate exited under faults (%v):\n%s", d.Err(), tail(d.Out.String(), 3000))
		}
		// Faults off: the replica catches up and every reader agrees.
		proxy.SetEnabled(false)
		ch.check(fmt.Sprintf("cycle %d, faults stopped", cycle), false)

		// Faults on for the readers only (the source is quiet).
		proxy.SetEnabled(true)
		src, err := readSource(db, true)
		if err != nil {
			t.Fatal(err)
		}
		for i := range pick(2, 10) {
			label := fmt.Sprintf("cycle %d, restore %d under faults", cycle, i+1)
			out := filepath.Join(dir, "faulty-restore.db")
			os.Remove(out)
			res := runLSEnv(t, creds, 5*time.Minute, "restore", "-integrity-check", "full", "-o", out, url)
			if res.code != 0 {
				c.add(outcomeStuck, fmt.Sprintf("%s failed although every fault is transient: %s", label, res))
				continue
			}
			st, err := readFile(out, true)
			if err != nil {
				c.add(outcomeWrong, fmt.Sprintf("%s exited 0 with an unreadable database: %v", label, err))
			} else if st.hash != src.hash {
				o, why := w.judge(src, st, true)
				c.add(o, label+": "+why)
			} else {
				c.add(outcomeOK, "")
			}
		}
		for i := range pick(2, 10) {
			label := fmt.Sprintf("cycle %d, VFS read %d under faults", cycle, i+1)
			st, err := readVFSEnv(creds, url, true)
			switch {
			case err != nil:
				c.add(clearError(err), label+": "+err.Error())
			case st.hash != src.hash:
				o, why := w.judge(src, st, true)
				c.add(o, label+": "+why)
			default:
				c.add(outcomeOK, "")
			}
		}
		proxy.SetEnabled(false)
	}
	st := proxy.Stats()
	t.Logf("proxy: %d requests, %d failed by the proxy", st.TotalRequests(), st.Failures())
	if code := d.Term(2 * time.Minute); code != 0 || !strings.Contains(d.Out.String(), "final sync done") {
		t.Errorf("replicate exited %d after SIGTERM (want 0 after a final sync):\n%s", code, tail(d.Out.String(), 3000))
	}
	ch.check("final", true)
	ch.finalSource()
}

// clearError: an error under transient faults is an acceptable outcome if
// it says something.
func clearError(err error) int {
	if strings.TrimSpace(err.Error()) == "" {
		return outcomeWrong
	}
	return outcomeOK
}
