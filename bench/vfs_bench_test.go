package bench_test

// BenchmarkVFS measures the read-replica VFS against the same queries on the
// local database file (the figures in the README):
//
//   - hot: 5,000 point queries by primary key over a hot set of 200 keys,
//     each its own transaction, in one sqlite3 process through the
//     extension, vs the same script on the local file;
//   - cold: 5,000 random keys from a cold start, likewise;
//   - latency: with 20 ms added to every remote request, one cold point
//     query (open included): sequential round trips, requests and bytes,
//     against the B-tree depth.
//
// The database (2.5 million rows and an index, about 1 GiB; fewer with
// LITESTREAM_BENCH_ROWS) is built once and kept in LITESTREAM_BENCH_DIR
// (default: a directory under the system temp dir), replicated as one
// level-9 snapshot in the file layout, its pages in the LZ4 frame encoding
// with a checksum per page, as this project's writer writes them
// (LITESTREAM_BENCH_ENCODING=block: the LZ4 block encoding of the ltx
// library and Litestream, kept in a replica directory of its own;
// LITESTREAM_BENCH_ENCODING=age: the frame encoding in an age-encrypted
// replica, remote/crypt, read with LITESTREAM_AGE_IDENTITY_FILE). Run it
// with
//
//	go test -run '^$' -bench VFS -benchtime 1x ./bench/
//
// Each sqlite3 run is repeated (min of 3) after one warm-up run that puts the
// files in the OS page cache; "per query" excludes the process start and
// database open, measured by a run of the same script with one query.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	_ "github.com/mattn/go-sqlite3" // in-process SQLite for the latency run
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/vfs/vfstest"
)

const (
	vfsBenchQueries = 5000
	vfsBenchHotKeys = 200
)

type vfsBenchEnv struct {
	dir, db, root, ext string
	rows               int
	// ids, for an encrypted replica: the identity its readers use.
	ids []age.Identity
}

// client returns a client of the replica's storage c, decrypting if the
// replica is encrypted.
func (env *vfsBenchEnv) client(b *testing.B, c remote.Client) remote.Client {
	if env.ids == nil {
		return c
	}
	cc, err := crypt.New(c, crypt.Options{Identities: env.ids})
	if err != nil {
		b.Fatal(err)
	}
	return cc
}

// ageKey returns the identity in path, made and written there if missing.
func ageKey(b *testing.B, path string) *age.X25519Identity {
	if data, err := os.ReadFile(path); err == nil {
		id, err := age.ParseX25519Identity(strings.TrimSpace(string(data)))
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return id
}

func vfsBenchSetup(b *testing.B) *vfsBenchEnv {
	b.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		b.Skip("sqlite3 shell not installed")
	}
	rows := 2_500_000
	if s := os.Getenv("LITESTREAM_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("LITESTREAM_BENCH_ROWS: %v", err)
		}
		rows = n
	}
	base := os.Getenv("LITESTREAM_BENCH_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), "litestream-bench")
	}
	env := &vfsBenchEnv{dir: filepath.Join(base, fmt.Sprintf("vfs-%d", rows)), rows: rows}
	env.db = filepath.Join(env.dir, "app.db")
	enc := os.Getenv("LITESTREAM_BENCH_ENCODING")
	switch enc {
	case "", "frame":
		enc = "frame"
		env.root = filepath.Join(env.dir, "replica-frame")
	case "block":
		env.root = filepath.Join(env.dir, "replica")
	case "age":
		env.root = filepath.Join(env.dir, "replica-age")
	default:
		b.Fatalf("LITESTREAM_BENCH_ENCODING %q: want frame, block or age", enc)
	}
	var dst remote.Client = file.New(env.root)
	if enc == "age" {
		if err := os.MkdirAll(env.dir, 0o755); err != nil {
			b.Fatal(err)
		}
		keyPath := filepath.Join(env.dir, "age-key.txt")
		id := ageKey(b, keyPath)
		env.ids = []age.Identity{id}
		b.Setenv("LITESTREAM_AGE_IDENTITY_FILE", keyPath)
		c, err := crypt.New(dst, crypt.Options{Recipients: []age.Recipient{id.Recipient()}})
		if err != nil {
			b.Fatal(err)
		}
		dst = c
		enc = "frame"
	}
	env.ext = filepath.Join(env.dir, "litestream_vfs")
	if err := os.MkdirAll(env.dir, 0o755); err != nil {
		b.Fatal(err)
	}

	if _, err := os.Stat(env.db + ".done"); err != nil {
		start := time.Now()
		os.Remove(env.db)
		os.RemoveAll(env.root)
		// ~350-byte rows: an email and a name (indexed by email) and 300
		// characters of hex, which LZ4 barely compresses.
		vfsBenchRun(b, "sqlite3", []string{env.db}, usersScript(rows, 150))
		if err := os.WriteFile(env.db+".done", nil, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s in %v", env.db, time.Since(start).Round(time.Second))
	}
	if _, err := os.Stat(env.root + ".done"); err != nil {
		start := time.Now()
		os.RemoveAll(env.root)
		if err := vfsBenchSnapshot(env.db, dst, enc); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(env.root+".done", nil, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("built its replica (%s encoding) in %v", enc, time.Since(start).Round(time.Second))
	}

	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "build", "-tags", "SQLITE3VFS_LOADABLE_EXT", "-buildmode=c-shared", "-o", env.ext+".so", "../extension")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build the extension: %v\n%s", err, out)
	}
	return env
}

// usersScript is the sqlite3 script that fills a new database with the
// benchmarks' users table: rows rows of an email and a name (indexed by
// email) and bioBytes random bytes in hex.
func usersScript(rows, bioBytes int) string {
	return fmt.Sprintf(`PRAGMA page_size=4096; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
create table users(id integer primary key, email text not null, name text not null, bio text not null);
with recursive s(x) as (select 1 union all select x+1 from s where x < %d)
insert into users select x, printf('user%%d@example.com', (x * 7919) %% %d), printf('User Number %%d', x), hex(randomblob(%d)) from s;
create index users_email on users(email);
`, rows, rows, bioBytes)
}

// vfsBenchSnapshot writes the database as one level-9 snapshot at TXID 1,
// as a writer's first snapshot would be (no checksum; pages in the LZ4 frame
// encoding, ours, or the block encoding, Litestream's).
func vfsBenchSnapshot(dbPath string, dst remote.Client, encoding string) error {
	f, err := os.Open(dbPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const pageSize = 4096
	commit := uint32(st.Size() / pageSize)
	pr, pw := io.Pipe()
	go func() {
		var enc interface {
			EncodeHeader(ltx.Header) error
			EncodePage(ltx.PageHeader, []byte) error
			Close() error
		}
		var err error
		if encoding == "block" {
			enc, err = ltx.NewEncoder(pw)
		} else {
			enc, err = ltxframe.NewEncoder(pw)
		}
		if err == nil {
			err = enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize,
				Commit: commit, MinTXID: 1, MaxTXID: 1, Timestamp: time.Now().UnixMilli()})
		}
		buf := make([]byte, pageSize)
		lock := ltx.LockPgno(pageSize)
		for pgno := uint32(1); err == nil && pgno <= commit; pgno++ {
			if pgno == lock {
				continue
			}
			if _, err = f.ReadAt(buf, int64(pgno-1)*pageSize); err == nil {
				err = enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf)
			}
		}
		if err == nil {
			err = enc.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err = dst.WriteLTXFile(context.Background(), remote.SnapshotLevel, 1, 1, pr)
	return err
}

func vfsBenchRun(b *testing.B, name string, args []string, stdin string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Env = os.Environ()
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil || stderr.Len() > 0 {
		b.Fatalf("%s: %v\nstdout: %.500s\nstderr: %.2000s", name, err, out, stderr.String())
	}
	return d
}

// vfsBenchScript returns a shell script that opens the database (local
// file or through the extension) and runs one point query per key.
func vfsBenchScript(env *vfsBenchEnv, viaVFS bool, keys []int) string {
	var sb strings.Builder
	if viaVFS {
		fmt.Fprintf(&sb, ".load %s\n.open file:app.db?vfs=litestream&replica=file://%s\n", env.ext, env.root)
	} else {
		fmt.Fprintf(&sb, ".open --readonly %s\n", env.db)
	}
	sb.WriteString(".output /dev/null\n")
	for _, k := range keys {
		fmt.Fprintf(&sb, "select id, email, name, length(bio) from users where id = %d;\n", k)
	}
	return sb.String()
}

// vfsBenchTime runs a script (best of 3 after a warm-up) and returns the
// total and the part spent on the queries after the first.
func vfsBenchTime(b *testing.B, env *vfsBenchEnv, viaVFS bool, keys []int) (total, perQuery time.Duration) {
	run := func(keys []int) time.Duration {
		script := vfsBenchScript(env, viaVFS, keys)
		best := time.Duration(1<<63 - 1)
		vfsBenchRun(b, "sqlite3", nil, script) // warm the OS page cache
		for range 3 {
			best = min(best, vfsBenchRun(b, "sqlite3", nil, script))
		}
		return best
	}
	total = run(keys)
	base := run(keys[:1])
	return total, (total - base) / time.Duration(len(keys)-1)
}

func BenchmarkVFS(b *testing.B) {
	env := vfsBenchSetup(b)
	seed := uint64(time.Now().UnixNano())
	b.Logf("seed %d, %d rows", seed, env.rows)
	rng := rand.New(rand.NewPCG(seed, 1))
	hotSet := make([]int, vfsBenchHotKeys)
	for i := range hotSet {
		hotSet[i] = 1 + rng.IntN(env.rows)
	}
	hot := make([]int, vfsBenchQueries)
	cold := make([]int, vfsBenchQueries)
	for i := range hot {
		hot[i] = hotSet[rng.IntN(len(hotSet))]
		cold[i] = 1 + rng.IntN(env.rows)
	}
	depth := vfsBenchDepth(b, env)
	st, _ := os.Stat(env.db)

	for range b.N {
		localHot, localHotQ := vfsBenchTime(b, env, false, hot)
		vfsHot, vfsHotQ := vfsBenchTime(b, env, true, hot)
		localCold, localColdQ := vfsBenchTime(b, env, false, cold)
		vfsCold, vfsColdQ := vfsBenchTime(b, env, true, cold)
		lat := vfsBenchLatency(b, env, cold[:5])

		b.ReportMetric(float64(vfsHot)/float64(localHot), "hot-ratio")
		b.ReportMetric(float64(vfsCold)/float64(localCold), "cold-ratio")
		b.ReportMetric(float64(lat.maxRT), "cold-round-trips")
		fmt.Printf(`
database: %d rows, %.0f MiB, B-tree depth of users: %d
| run | local file | VFS (extension) | ratio |
|---|---|---|---|
| hot: %d queries over %d keys, whole process | %v | %v | %.2fx |
| hot: per query (open excluded) | %v | %v | %.2fx |
| cold: %d random keys, whole process | %v | %v | %.2fx |
| cold: per query (open excluded) | %v | %v | %.2fx |
20 ms per request, cold process, one point query (open included), %d keys:
sequential round trips %d..%d (limit depth+3 = %d), requests %.1f, bytes %.0f KiB, wall %v per query
`,
			env.rows, float64(st.Size())/(1<<20), depth,
			vfsBenchQueries, vfsBenchHotKeys, localHot.Round(time.Millisecond), vfsHot.Round(time.Millisecond), float64(vfsHot)/float64(localHot),
			localHotQ, vfsHotQ, float64(vfsHotQ)/float64(localHotQ),
			vfsBenchQueries, localCold.Round(time.Millisecond), vfsCold.Round(time.Millisecond), float64(vfsCold)/float64(localCold),
			localColdQ, vfsColdQ, float64(vfsColdQ)/float64(localColdQ),
			lat.n, lat.minRT, lat.maxRT, depth+3, lat.requests, lat.bytes/1024, lat.wall.Round(time.Millisecond))
	}
}

// vfsBenchDepth returns the number of pages on a root-to-leaf path of the
// users table (dbstat paths have one "/" per level).
func vfsBenchDepth(b *testing.B, env *vfsBenchEnv) int {
	out, err := exec.Command("sqlite3", "-readonly", env.db, "select max(length(path) - length(replace(path, '/', ''))) from dbstat where name = 'users'").Output()
	if err != nil {
		b.Fatalf("dbstat: %v", err)
	}
	d, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		b.Fatalf("dbstat: %q", out)
	}
	return d
}

type vfsLatency struct {
	n, minRT, maxRT int
	requests, bytes float64
	wall            time.Duration
}

var vfsBenchSeq int

// vfsBenchLatency opens a cold replica (a new VFS: empty index and cache)
// for each key, through a remote that adds 20 ms to every request, and
// answers one point query.
func vfsBenchLatency(b *testing.B, env *vfsBenchEnv, keys []int) vfsLatency {
	ctx := context.Background()
	res := vfsLatency{n: len(keys), minRT: 1 << 30}
	var wall time.Duration
	for _, k := range keys {
		fc := &vfstest.Faulty{Client: file.New(env.root), Delay: 20 * time.Millisecond}
		c := env.client(b, fc) // requests counted below the decryption
		vfsBenchSeq++
		name := fmt.Sprintf("benchlat%d", vfsBenchSeq)
		v, err := vfs.Register(name, vfs.Options{
			OpenClient: func(context.Context, string) (remote.Client, error) { return c, nil },
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		db, err := sql.Open("sqlite3", "file:app.db?vfs="+name+"&replica=bench")
		if err != nil {
			b.Fatal(err)
		}
		var email string
		if err := db.QueryRowContext(ctx, "select email from users where id = ?", k).Scan(&email); err != nil {
			b.Fatal(err)
		}
		wall += time.Since(start)
		rt := fc.SequentialRoundTrips()
		res.minRT, res.maxRT = min(res.minRT, rt), max(res.maxRT, rt)
		res.requests += float64(fc.Requests()) / float64(len(keys))
		res.bytes += float64(fc.Bytes.Load()) / float64(len(keys))
		db.Close()
		v.Close()
	}
	res.wall = wall / time.Duration(len(keys))
	return res
}
