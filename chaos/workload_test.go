package chaos

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// The application's workload. Every transaction is generated here, its SQL
// kept under its id, and it records itself in txlog, whose INTEGER PRIMARY
// KEY (max + 1 under the write lock) is the commit order. So any state a
// reader returns can be judged: its txlog must be a prefix of the source's,
// and its content must equal a replay of exactly those transactions
// (workload.replayHash). Content is compared with the sqlite3 shell's
// `.sha3sum --schema` (every table's rows and the schema, independent of
// page layout).
const schemaSQL = `CREATE TABLE txlog(seq INTEGER PRIMARY KEY, txn TEXT NOT NULL UNIQUE, kind TEXT NOT NULL);
CREATE TABLE items(id INTEGER PRIMARY KEY, txn TEXT NOT NULL, k INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX items_k ON items(k);
CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL, txn TEXT NOT NULL);
CREATE TABLE hot(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
CREATE INDEX hot_k ON hot(k);`

type workload struct {
	mu    sync.Mutex
	rng   *rand.Rand
	n     int
	sql   map[string]string // txn id -> its statements (no BEGIN/COMMIT)
	acked map[string]bool   // COMMIT returned to the application
	// replays caches replayHash by the hash of the txn list.
	replays map[string]string
}

func newWorkload(rng *rand.Rand) *workload {
	return &workload{rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), sql: map[string]string{}, acked: map[string]bool{}, replays: map[string]string{}}
}

func (w *workload) newID(prefix string) string {
	w.n++
	return fmt.Sprintf("%s%d", prefix, w.n)
}

func (w *workload) finish(id, kind string, stmts []string) (string, string) {
	stmts = append(stmts, fmt.Sprintf("INSERT INTO txlog(txn, kind) VALUES ('%s', '%s');", id, kind))
	s := strings.Join(stmts, "\n")
	w.sql[id] = s
	return id, s
}

// small: a few rows of varied size, an upsert, sometimes a range delete.
func (w *workload) small(prefix string) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	var vals []string
	for i := range 1 + w.rng.IntN(5) {
		vals = append(vals, fmt.Sprintf("('%s', %d, sha3('%s:%d', 256) || zeroblob(%d))", id, w.rng.IntN(100000), id, i, w.rng.IntN(2000)))
	}
	stmts := []string{
		"INSERT INTO items(txn, k, payload) VALUES " + strings.Join(vals, ", ") + ";",
		fmt.Sprintf("INSERT INTO kv(k, v, txn) VALUES (%d, '%s', '%s') ON CONFLICT(k) DO UPDATE SET v = excluded.v || kv.v, txn = excluded.txn;", w.rng.IntN(500), id, id),
	}
	if w.rng.IntN(10) == 0 {
		lo := w.rng.IntN(100000)
		stmts = append(stmts, fmt.Sprintf("DELETE FROM items WHERE k BETWEEN %d AND %d;", lo, lo+w.rng.IntN(300)))
	}
	return w.finish(id, "small", stmts)
}

// large: rows*~1 KiB in one statement; with a small cache_size it spills
// to the WAL before COMMIT.
func (w *workload) large(prefix string, rows int) (id, sql string) {
	return w.largeNoise(prefix, rows, 8)
}

// largeNoise is large with pieces*64 incompressible bytes per row.
func (w *workload) largeNoise(prefix string, rows, pieces int) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	stmt := fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
INSERT INTO items(txn, k, payload) SELECT '%s', (i * 7919 + %d) %% 100000, %s || zeroblob(%d) FROM c;`, rows, id, w.rng.IntN(1000), noise(id, pieces), 200+w.rng.IntN(800))
	return w.finish(id, "large", []string{stmt})
}

// noise is an SQL expression of n*64 bytes that do not compress (so
// snapshots and compactions grow past the VFS's whole-file size), the same
// on every replay.
func noise(id string, n int) string {
	parts := make([]string, n)
	for j := range parts {
		parts[j] = fmt.Sprintf("sha3('%s:' || i || ':%d', 512)", id, j)
	}
	return strings.Join(parts, " || ")
}

// noiseRows: rows of ~2.5 KiB (one per page) that LZ4 does not compress
// (hex digits of hashes: no repeats to find), whose size rewrite keeps.
func (w *workload) noiseRows(prefix string, rows int) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	stmt := fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
INSERT INTO items(txn, k, payload) SELECT '%s', (i * 7919 + %d) %% 100000, substr(%s, 1, 2300 + (i * 37) %% 400) FROM c;`, rows, id, w.rng.IntN(1000), hexNoise("'"+id+":' || i", 24))
	return w.finish(id, "large", []string{stmt})
}

// rewrite gives the items with ids lo..hi new payloads of the same size
// and kind as noiseRows's: each page is rewritten in place, so the
// database does not grow (a checkpoint needs no space) and the log gets a
// frame per page.
func (w *workload) rewrite(prefix string, lo, hi int) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	stmt := fmt.Sprintf("UPDATE items SET txn = '%s', payload = substr(%s, 1, length(payload)) WHERE id BETWEEN %d AND %d;", id, hexNoise("'"+id+":' || id", 24), lo, hi)
	return w.finish(id, "rewrite", []string{stmt})
}

// hexNoise is an SQL text expression of n*128 hex digits derived from the
// SQL expression seed (the same on every replay). Text, not a blob: `||`
// turns blobs into text, which functions cut at a NUL byte.
func hexNoise(seed string, n int) string {
	parts := make([]string, n)
	for j := range parts {
		parts[j] = fmt.Sprintf("hex(sha3(%s || ':%d', 512))", seed, j)
	}
	return strings.Join(parts, " || ")
}

// schema: create or drop a side table or an index (page 1 and the schema
// cookie change).
func (w *workload) schema(prefix string) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	n := w.rng.IntN(4)
	var stmt string
	switch w.rng.IntN(4) {
	case 0, 1:
		stmt = fmt.Sprintf("CREATE TABLE IF NOT EXISTS side%d(k INTEGER PRIMARY KEY, v); INSERT OR REPLACE INTO side%d SELECT k, v FROM kv;", n, n)
	case 2:
		stmt = fmt.Sprintf("DROP TABLE IF EXISTS side%d;", n)
	default:
		if w.rng.IntN(2) == 0 {
			stmt = "CREATE INDEX IF NOT EXISTS items_txn ON items(txn);"
		} else {
			stmt = "DROP INDEX IF EXISTS items_txn;"
		}
	}
	return w.finish(id, "schema", []string{stmt})
}

// trim deletes the oldest rows (frees pages, so VACUUM has work).
func (w *workload) trim(prefix string) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	return w.finish(id, "trim", []string{fmt.Sprintf("DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id LIMIT %d);", 500+w.rng.IntN(2000))})
}

// hot: one small row in a table of its own (the WAL-bound load).
func (w *workload) hot(prefix string) (id, sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id = w.newID(prefix)
	return w.finish(id, "hot", []string{fmt.Sprintf("INSERT INTO hot(k, v) VALUES (%d, sha3('%s', 256) || zeroblob(120));", w.rng.IntN(1000000), id)})
}

// mixed: mostly small, sometimes schema changes and trims.
func (w *workload) mixed(prefix string) (id, sql string) {
	w.mu.Lock()
	r := w.rng.IntN(100)
	w.mu.Unlock()
	switch {
	case r < 3:
		return w.schema(prefix)
	case r < 5:
		return w.trim(prefix)
	default:
		return w.small(prefix)
	}
}

func (w *workload) intn(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.IntN(n)
}

func (w *workload) ack(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.acked[id] = true
}

// ackLines records every "ack:ID" line of a shell's output.
func (w *workload) ackLines(lines []string) {
	for _, l := range lines {
		if id, ok := strings.CutPrefix(l, "ack:"); ok {
			w.ack(id)
		}
	}
}

// txnScript is one transaction for an application shell, printing
// "ack:ID" once COMMIT has returned.
func txnScript(id, sql string) string {
	return "BEGIN IMMEDIATE;\n" + sql + "\nCOMMIT;\nSELECT 'ack:" + id + "';"
}

// replayHash is the content hash of the state after exactly txns, in order:
// a replay into an in-memory database.
func (w *workload) replayHash(txns []string) (string, error) {
	h := sha256.New()
	for _, id := range txns {
		h.Write([]byte(id + ","))
	}
	key := hex.EncodeToString(h.Sum(nil))
	w.mu.Lock()
	if v, ok := w.replays[key]; ok {
		w.mu.Unlock()
		return v, nil
	}
	var b strings.Builder
	b.WriteString(schemaSQL + "\n")
	for _, id := range txns {
		s, ok := w.sql[id]
		if !ok {
			w.mu.Unlock()
			return "", fmt.Errorf("transaction %q was never generated", id)
		}
		b.WriteString("BEGIN;\n" + s + "\nCOMMIT;\n")
	}
	w.mu.Unlock()
	b.WriteString(".sha3sum --schema\n")
	out, err := shellOnce(cleanEnv(), ":memory:", b.String(), 5*time.Minute)
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	v := strings.TrimSpace(out)
	w.mu.Lock()
	w.replays[key] = v
	w.mu.Unlock()
	return v, nil
}

// ---------------------------------------------------------------------------
// States read from a database.

// dbState is what a reader returned.
type dbState struct {
	hash  string
	txlog []string // with full reads only
	extra string   // the VFS's TXID and error, the follower's TXID
}

func (s dbState) describe() string {
	if s.extra != "" {
		return fmt.Sprintf("%d txns, %s", len(s.txlog), s.extra)
	}
	return fmt.Sprintf("%d txns", len(s.txlog))
}

// stateScript reads a database's hash (and with full, its txlog) in one
// read transaction.
func stateScript(full bool, vfs bool) string {
	s := "BEGIN;\n.sha3sum --schema\n"
	if vfs {
		s += "SELECT 'txid:' || litestream_txid() || ' error:' || coalesce(litestream_error(), 'none');\n"
	}
	if full {
		s += "SELECT 'tx:' || txn FROM txlog ORDER BY seq;\n"
	}
	return s + "COMMIT;\n"
}

func parseState(out string) (dbState, error) {
	var s dbState
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(l, "tx:"):
			s.txlog = append(s.txlog, l[3:])
		case strings.HasPrefix(l, "txid:"):
			s.extra = l
		case s.hash == "" && len(l) == 56:
			s.hash = l
		}
	}
	if s.hash == "" {
		return s, fmt.Errorf("no content hash in %q", tail(out, 300))
	}
	return s, nil
}

// readFile reads a database file (immutable: nothing is written beside it).
func readFile(path string, full bool) (dbState, error) {
	out, err := shellOnce(cleanEnv(), "file:"+path+"?immutable=1", stateScript(full, false), 2*time.Minute)
	if err != nil {
		return dbState{}, err
	}
	return parseState(out)
}

// readSource reads the live source as the application sees it.
func readSource(dbPath string, full bool) (dbState, error) {
	out, err := shellOnce(cleanEnv(), "file:"+dbPath+"?mode=ro", ".timeout 60000\n"+stateScript(full, false), 2*time.Minute)
	if err != nil {
		return dbState{}, err
	}
	return parseState(out)
}

// vfsOpen is the shell script that opens replica through the extension.
func vfsOpen(replicaURL string) string {
	return ".load " + extPath + "\n.open 'file:chaos.db?vfs=litestream&replica=" + replicaURL + "'\n"
}

// vfsEnv configures the readers the harness starts. A reader notices a
// missing file (a gap) only when it lists the replica: its probe of the next
// level-0 file by name cannot tell "not written yet" from "deleted", and it
// lists at most every list_interval (default 1 minute). The harness judges a
// reader stuck after 20 s, so its readers list every second; the default's
// bound is the documented one (README, "Readers find new files by name").
func vfsEnv() []string {
	return cleanEnv("LITESTREAM_POLL_INTERVAL=100ms", "LITESTREAM_LIST_INTERVAL=1s", "LITESTREAM_LOG_LEVEL=error")
}

// readVFS reads the replica through the extension in a new sqlite3 process.
func readVFS(replicaURL string, full bool) (dbState, error) {
	return readVFSEnv(nil, replicaURL, full)
}

// readVFSEnv is readVFS with extra environment variables.
func readVFSEnv(env []string, replicaURL string, full bool) (dbState, error) {
	out, err := shellOnce(append(vfsEnv(), env...), ":memory:", vfsOpen(replicaURL)+stateScript(full, true), 3*time.Minute)
	if err != nil {
		return dbState{}, err
	}
	return parseState(out)
}

// isPrefix reports whether a is a prefix of b, and if not, where they part.
func isPrefix(a, b []string) (bool, string) {
	for i, id := range a {
		if i >= len(b) {
			return false, fmt.Sprintf("has %d transactions, the source %d (first extra: %s)", len(a), len(b), id)
		}
		if b[i] != id {
			return false, fmt.Sprintf("transaction %d is %s, in the source %s", i+1, id, b[i])
		}
	}
	return true, ""
}

// judge classifies a reader's state that is not the source's: wrong (never
// a state of the source), or an older state (stuck, or lost when final).
func (w *workload) judge(src, got dbState, final bool) (int, string) {
	if ok, why := isPrefix(got.txlog, src.txlog); !ok {
		return outcomeWrong, "not a state of the source: " + why
	}
	want, err := w.replayHash(got.txlog)
	if err != nil {
		return outcomeWrong, err.Error()
	}
	if got.hash != want {
		return outcomeWrong, fmt.Sprintf("its txlog is the source's first %d transactions but its content is not their result (hash %.12s, want %.12s)", len(got.txlog), got.hash, want)
	}
	if len(got.txlog) == len(src.txlog) {
		// Same transactions, right content, yet not the source's hash: the
		// source differs from its own history.
		return outcomeWrong, fmt.Sprintf("the source's content (hash %.12s) is not the result of its %d transactions (%.12s)", src.hash, len(src.txlog), want)
	}
	if final {
		return outcomeLost, fmt.Sprintf("after the final sync it holds %d of the source's %d transactions (first missing: %s)", len(got.txlog), len(src.txlog), src.txlog[len(got.txlog)])
	}
	return outcomeStuck, fmt.Sprintf("holds %d of the source's %d transactions (first missing: %s)", len(got.txlog), len(src.txlog), src.txlog[len(got.txlog)])
}

// ---------------------------------------------------------------------------
// The WAL, for diagnostics: commits an application crash left in the WAL
// file that the wal-index does not publish.

// walOrphans counts the commit frames after the wal-index's mxFrame that
// continue the WAL's checksum chain: transactions that reached the WAL file
// but that SQLite never showed (the process died before publishing them).
func walOrphans(dbPath string) (orphans, mxFrame int) {
	shm, err := os.ReadFile(dbPath + "-shm")
	if err != nil || len(shm) < 48 {
		return 0, 0
	}
	wal, err := os.Open(dbPath + "-wal")
	if err != nil {
		return 0, 0
	}
	defer wal.Close()
	hdr := make([]byte, 32)
	if _, err := wal.ReadAt(hdr, 0); err != nil {
		return 0, 0
	}
	magic := binary.BigEndian.Uint32(hdr)
	if magic&^1 != 0x377f0682 {
		return 0, 0
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic&1 == 1 {
		order = binary.BigEndian
	}
	ps := int(binary.BigEndian.Uint32(hdr[8:]))
	mx := int(binary.LittleEndian.Uint32(shm[16:]))
	if !slices.Equal(shm[32:40], hdr[16:24]) {
		return 0, mx // the wal-index describes another generation
	}
	s0, s1 := binary.LittleEndian.Uint32(shm[24:]), binary.LittleEndian.Uint32(shm[28:])
	if mx == 0 {
		s0, s1 = binary.BigEndian.Uint32(hdr[24:]), binary.BigEndian.Uint32(hdr[28:])
	}
	frame := make([]byte, 24+ps)
	for i := mx + 1; ; i++ {
		if _, err := wal.ReadAt(frame, 32+int64(i-1)*int64(24+ps)); err != nil {
			return orphans, mx
		}
		if !slices.Equal(frame[8:16], hdr[16:24]) {
			return orphans, mx
		}
		s0, s1 = walChecksum(order, frame[:8], s0, s1)
		s0, s1 = walChecksum(order, frame[24:], s0, s1)
		if s0 != binary.BigEndian.Uint32(frame[16:]) || s1 != binary.BigEndian.Uint32(frame[20:]) {
			return orphans, mx
		}
		if binary.BigEndian.Uint32(frame[4:]) != 0 {
			orphans++
		}
	}
}

// walChecksum is SQLite's WAL checksum (wal.c walChecksumBytes).
func walChecksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// walBackfilled reports whether the wal-index shows every frame of the log
// checkpointed: the application's next write then starts the log over
// from its beginning, reusing the file's space.
func walBackfilled(dbPath string) bool {
	shm, err := os.ReadFile(dbPath + "-shm")
	if err != nil || len(shm) < 136 {
		return false
	}
	// WalIndexHdr.mxFrame (offset 16) and WalCkptInfo.nBackfill (offset
	// 96), in native (little-endian here) order.
	return binary.LittleEndian.Uint32(shm[16:]) == binary.LittleEndian.Uint32(shm[96:])
}

// walSize is the WAL file's size (0 if absent).
func walSize(dbPath string) int64 {
	fi, err := os.Stat(dbPath + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// mkdirs creates a directory under dir.
func mkdir(dir, name string) string {
	p := filepath.Join(dir, name)
	_ = os.MkdirAll(p, 0o755)
	return p
}
