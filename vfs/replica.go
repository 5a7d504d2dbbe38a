package vfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/pagecache"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

// Defaults for ReplicaOptions.
const (
	DefaultCacheSize      = 64 << 20
	DefaultPollInterval   = time.Second
	DefaultRequestTimeout = 30 * time.Second
	// DefaultListInterval is how often an idle poller lists every level
	// (see ReplicaOptions.ListInterval).
	DefaultListInterval = time.Minute
)

// ReplicaOptions tune a Replica. Zero values take the defaults.
type ReplicaOptions struct {
	// CacheSize bounds the decoded pages kept in memory, in bytes
	// (default 64 MiB).
	CacheSize int64
	// PollInterval is how often the poller looks for new files
	// (default 1 s).
	PollInterval time.Duration
	// ListInterval: polls read the next level-0 file by name (GET-class
	// requests) and list the replica only when that cannot decide, and at
	// most this often while idle, to notice a primary that compacted and
	// deleted level-0 files the reader never saw, or a replica reset
	// (default DefaultListInterval, one minute).
	ListInterval time.Duration
	// RequestTimeout bounds one remote request; a request that stalls
	// longer fails and is retried like any other failure (default 30 s).
	RequestTimeout time.Duration
	// Fetch tunes the page fetcher (retries, backoff, parallelism).
	Fetch pagecache.Options
	// Prefetch tunes read-ahead; see PrefetchOptions.
	Prefetch PrefetchOptions
	// WholeFileSize: files up to this size are read whole and their
	// checksum verified before any page of them is served (verify.go;
	// default DefaultWholeFileSize; negative: never). Larger files are
	// read by page range.
	WholeFileSize int64
	// Logger receives poll errors and read failures (default slog.Default()).
	Logger *slog.Logger
}

func (o ReplicaOptions) withDefaults() ReplicaOptions {
	o.CacheSize = cmp.Or(o.CacheSize, DefaultCacheSize)
	o.PollInterval = positiveOr(o.PollInterval, DefaultPollInterval)
	o.ListInterval = positiveOr(o.ListInterval, DefaultListInterval)
	o.RequestTimeout = positiveOr(o.RequestTimeout, DefaultRequestTimeout)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	o.WholeFileSize = cmp.Or(o.WholeFileSize, DefaultWholeFileSize) // negative: never
	o.Fetch.Logger = cmp.Or(o.Fetch.Logger, o.Logger)
	o.Prefetch = o.Prefetch.withDefaults()
	return o
}

// positiveOr returns v if it is positive, else def: an option whose zero or
// negative value means "the default".
func positiveOr[T ~int | ~int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Replica is one remote replica opened for reading: its current page index,
// its page cache and fetcher, and a poller that extends the index as the
// primary uploads new files. Every connection to the same replica in a
// process shares one Replica (see VFS), so N connections cost one index, one
// cache and one poll.
//
// A Replica is safe for concurrent use.
type Replica struct {
	name    string // URL or description, for logs
	client  remote.Client
	fetcher *pagecache.Fetcher
	opts    ReplicaOptions
	log     *slog.Logger

	cur atomic.Pointer[index.Version] // latest state known; never nil after open

	pf      *prefetcher
	seeds   seeds        // page 1 read along with file headers (seed.go)
	latency *latencyEWMA // of remote requests (timeout.go)

	// pollMu serializes polls (the poller's and synchronous ones).
	pollMu   sync.Mutex
	lastList time.Time // last listing of every level (open or poll)
	gapped   bool      // files exist beyond cur but none continues it (poll.go)

	verify *verifyingClient // nil when files are never read whole

	mu       sync.Mutex
	refs     int
	stopPoll context.CancelFunc
	pollDone chan struct{}
	lastOK   time.Time // last successful poll (or open)
	lastErr  error     // error of the last poll, nil if it succeeded
	polls    int64
	travel   map[travelKey]*index.Version // built past versions, shared by connections
}

type travelKey struct {
	txid ltx.TXID
	ts   int64
}

// OpenReplica reads the replica's latest state (one listing round trip and
// one round of parallel page-index reads) and returns a Replica whose
// poller is not running; Acquire starts it.
func OpenReplica(ctx context.Context, name string, client remote.Client, opts ReplicaOptions) (*Replica, error) {
	opts = opts.withDefaults()
	tc := &timeoutClient{Client: client, timeout: opts.RequestTimeout}
	client = tc
	var vc *verifyingClient
	if opts.WholeFileSize > 0 {
		// Verified small files are kept up to an eighth of the page cache
		// (at least a few files' worth).
		vc = newVerifyingClient(tc, opts.WholeFileSize, max(opts.CacheSize/8, 4*opts.WholeFileSize))
		client = vc
	}
	r := &Replica{
		name:    name,
		client:  client,
		verify:  vc,
		latency: &tc.latency,
		fetcher: pagecache.NewFetcher(client, pagecache.New(opts.CacheSize), opts.Fetch),
		opts:    opts,
		log:     opts.Logger.With("replica", name),
		travel:  make(map[travelKey]*index.Version),
	}
	r.pf = newPrefetcher(r, opts.Prefetch)
	v, err := r.build(ctx, 0, time.Time{})
	r.lastList = time.Now() // the build listed every level
	switch {
	case errors.Is(err, index.ErrGap) && v != nil:
		// History is missing after v: serve the consistent state before
		// the gap, and say so. Its lag counts from when that state was
		// written, since nothing confirmed it as the newest.
		r.log.Warn("serving the state before a gap in the replica's history", "txid", v.TXID(), "error", err)
		r.gapped = true
		r.lastOK = v.Timestamp()
		r.lastErr = err
	case err != nil && v != nil:
		// The latest state, read around damaged files: say so until the
		// next poll.
		r.lastOK = time.Now()
		r.lastErr = err
	case err != nil:
		return nil, err
	default:
		r.lastOK = time.Now()
	}
	r.cur.Store(v)
	return r, nil
}

// buildAttempts is how often build tries before giving up on remote errors
// (the first wait is buildBackoff, doubled each time).
const (
	buildAttempts = 3
	buildBackoff  = 100 * time.Millisecond
)

// build returns the version at txid or ts (both zero: latest) from a fresh
// listing. Remote failures are retried with backoff; a target the replica
// cannot build is not. When the target is cut short by a gap in the
// replica's history, build returns both the version before the gap and the
// *index.GapError; callers decide whether the older state will do.
func (r *Replica) build(ctx context.Context, txid ltx.TXID, ts time.Time) (*index.Version, error) {
	backoff := buildBackoff
	for attempt := 1; ; attempt++ {
		v, err := r.buildOnce(ctx, txid, ts)
		// A file deleted since the listing is worth a fresh listing; a
		// failure the backend marked permanent or already retried to
		// exhaustion is not worth another try.
		if err == nil || attempt == buildAttempts || ctx.Err() != nil || v != nil ||
			(!retry.Retryable(err) && !errors.Is(err, remote.ErrNotExist)) ||
			errors.Is(err, index.ErrNoSnapshot) || errors.Is(err, index.ErrNotAvailable) {
			return v, err
		}
		r.log.Warn("building the index failed, retrying", "attempt", attempt, "backoff", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		backoff *= 2
	}
}

// buildOnce plans and builds once. A damaged file (index.ErrDamaged) is
// planned around, up to maxDamaged of them: the result is then returned
// with an error naming them (and the gap, if their TXIDs are in no other
// file).
func (r *Replica) buildOnce(ctx context.Context, txid ltx.TXID, ts time.Time) (*index.Version, error) {
	// Only a point in time needs every file's stored timestamp (on s3 a
	// HEAD per file the client has not seen); the latest state or a TXID
	// plans without them, and the state's time may then be its last
	// file's upload time (issue 11 item 4: one listing to open, no HEAD).
	list := remote.ListAllUntimed
	if !ts.IsZero() {
		list = remote.ListAll
	}
	files, err := list(ctx, r.client)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", r.name, err)
	}
	var damaged []error
	var newest ltx.TXID // highest TXID of a damaged file planned around
	for {
		plan, err := index.PlanFromFiles(files, txid, ts)
		var gap *index.GapError
		if errors.As(err, &gap) {
			plan = gap.Plan
		} else if err != nil {
			return nil, fmt.Errorf("replica %s: %w", r.name, errors.Join(append(damaged, err)...))
		}
		v, berr := index.Build(ctx, newSeedingClient(r.client, &r.seeds), plan)
		if bad := damagedFile(berr); bad != nil && len(damaged) < maxDamaged {
			r.log.Warn("a file is damaged; planning around it", "error", berr)
			damaged = append(damaged, berr)
			files = without(files, bad)
			newest = max(newest, bad.MaxTXID)
			continue
		}
		if berr != nil {
			return nil, fmt.Errorf("replica %s: %w", r.name, errors.Join(append(damaged, berr)...))
		}
		if err == nil && txid == 0 && ts.IsZero() && newest > v.TXID() {
			// Latest was asked for, and only damaged files hold newer
			// TXIDs: as good as a gap.
			err = fmt.Errorf("%w: TXIDs %s-%s are only in damaged files", index.ErrGap, v.TXID()+1, newest)
		}
		if err != nil || len(damaged) > 0 {
			return v, fmt.Errorf("replica %s: serving TXID %s: %w", r.name, v.TXID(), errors.Join(append(damaged, err)...))
		}
		return v, nil
	}
}

// rebuild returns a version with the same content as v, built from the
// files the remote has now: for a version some of whose files the primary
// deleted (after compacting them). It fails when no chain of the remaining
// files ends exactly at v's TXID. If v was the replica's latest state, the
// replica switches to the rebuilt one.
func (r *Replica) rebuild(ctx context.Context, v *index.Version) (*index.Version, error) {
	nv, err := r.build(ctx, v.TXID(), time.Time{})
	if nv == nil {
		return nil, err
	}
	if nv.TXID() != v.TXID() || nv.Commit() != v.Commit() || nv.PageSize() != v.PageSize() {
		return nil, fmt.Errorf("replica %s: rebuilt TXID %s differs from the original", r.name, v.TXID())
	}
	r.cur.CompareAndSwap(v, nv)
	r.mu.Lock()
	for k, tv := range r.travel {
		if tv == v {
			r.travel[k] = nv
		}
	}
	r.mu.Unlock()
	r.log.Info("rebuilt the index of a TXID whose files were deleted", "txid", v.TXID())
	return nv, nil
}

// Version returns the latest state the replica knows. Versions are
// immutable; holding one pins that state.
func (r *Replica) Version() *index.Version { return r.cur.Load() }

// Fetcher returns the replica's page fetcher (for its Stats).
func (r *Replica) Fetcher() *pagecache.Fetcher { return r.fetcher }

// Status describes the poller.
type Status struct {
	TXID      ltx.TXID
	Timestamp time.Time // LTX timestamp of the latest state
	LastPoll  time.Time // last successful poll (or open)
	Lag       time.Duration
	Err       error // error of the last poll, nil if it succeeded
	Polls     int64
	// Latency is the moving average of remote request durations.
	Latency time.Duration
	// TreePrefetches and ReadAheads count the prefetches issued for B-tree
	// pages and for sequential scans.
	TreePrefetches, ReadAheads int64
}

// Status returns the replica's freshness: Lag is the time since a poll last
// confirmed the replica's state as the newest the remote has; it grows
// while polls fail (Err says why).
func (r *Replica) Status() Status {
	v := r.cur.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{
		TXID: v.TXID(), Timestamp: v.Timestamp(), LastPoll: r.lastOK,
		Lag: time.Since(r.lastOK), Err: r.lastErr, Polls: r.polls,
		Latency: r.latency.get(), TreePrefetches: r.pf.tree.Load(), ReadAheads: r.pf.ahead.Load(),
	}
}

// Acquire registers a user of the replica; the poller runs while there is
// at least one. A user that arrives after the replica sat idle for longer
// than a poll interval polls once first, so it does not start stale.
func (r *Replica) Acquire(ctx context.Context) {
	r.mu.Lock()
	r.refs++
	start := r.refs == 1
	stale := time.Since(r.lastOK) > r.opts.PollInterval
	if start {
		pctx, cancel := context.WithCancel(context.Background())
		r.stopPoll, r.pollDone = cancel, make(chan struct{})
		go r.pollLoop(pctx, r.pollDone)
	}
	r.mu.Unlock()
	if start && stale {
		_ = r.Poll(ctx) // errors are recorded in Status and logged
	}
}

// Release drops a user; the last one stops the poller (and waits for it).
func (r *Replica) Release() {
	r.mu.Lock()
	if r.refs == 0 { // stopped by VFS.Close already
		r.mu.Unlock()
		return
	}
	r.refs--
	var stop context.CancelFunc
	var done chan struct{}
	if r.refs == 0 {
		stop, done = r.stopPoll, r.pollDone
		r.stopPoll, r.pollDone = nil, nil
	}
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func (r *Replica) pollLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = r.pollOnce(ctx, false)
	}
}

// Poll looks for new files once and applies them (see poll.go), thoroughly:
// when reading the next level-0 file by name finds nothing new, it lists
// the replica, so that files a primary compacted away while nobody polled
// are seen (the background poller lists only every ListInterval). The
// result is also recorded for Status.
func (r *Replica) Poll(ctx context.Context) error { return r.pollOnce(ctx, true) }

// pollOnce is one poll, thorough or as cheap as it can decide (poll.go).
func (r *Replica) pollOnce(ctx context.Context, thorough bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("replica %s: poll panicked: %v", r.name, p)
			r.log.Error("poll panicked", "panic", p)
		}
		r.mu.Lock()
		r.polls++
		if err == nil {
			r.lastOK = time.Now()
		} else if ctx.Err() == nil {
			r.log.Warn("poll failed", "error", err, "lag", time.Since(r.lastOK).Round(time.Millisecond))
		}
		if ctx.Err() == nil {
			r.lastErr = err
		}
		r.mu.Unlock()
	}()
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	return r.poll(ctx, thorough)
}

// VersionAt returns the state at txid or at time ts (exactly one non-zero),
// built with the same plan as point-in-time restore. Built versions are
// kept so that connections travelling to the same point share one.
func (r *Replica) VersionAt(ctx context.Context, txid ltx.TXID, ts time.Time) (*index.Version, error) {
	k := travelKey{txid: txid}
	if !ts.IsZero() {
		k.ts = ts.UnixNano()
	}
	r.mu.Lock()
	v, ok := r.travel[k]
	r.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := r.build(ctx, txid, ts)
	switch {
	case v != nil && err != nil && !errors.Is(err, index.ErrGap):
		r.log.Warn("time travel target built around damaged files", "error", err)
	case err != nil:
		return nil, err // a gap before the target time included: not that time's state
	}
	r.mu.Lock()
	if len(r.travel) >= 16 { // a few past states are plenty; forget them all
		clear(r.travel)
	}
	r.travel[k] = v
	r.mu.Unlock()
	return v, nil
}

// ErrPageRead marks a failure to read a page from the remote (after
// retries); the VFS turns it into SQLITE_IOERR.
var ErrPageRead = errors.New("page read failed")

// ReadPage returns one page of v (nil: zeros) and whether it had to be
// fetched from the remote (a cache miss), which drives prefetching.
func (r *Replica) ReadPage(ctx context.Context, v *index.Version, pgno uint32) (data []byte, miss bool, err error) {
	e, ok := v.Lookup(pgno)
	if !ok {
		return nil, false, nil
	}
	if pgno <= maxSeedPages {
		if data, ok := r.seeds.get(e); ok {
			// A seeded page came from the remote with its file's header:
			// pages after page 1 count as misses so the prefetcher learns
			// the tree they root (page 2 is often a table's root).
			return data, pgno != 1, nil
		}
	}
	req := pagecache.Request{Range: e, Pgno: pgno, PageSize: v.PageSize()}
	miss = !r.fetcher.Cached(req)
	data, err = r.fetcher.ReadPage(ctx, req)
	if err != nil {
		return nil, miss, fmt.Errorf("%w: replica %s at TXID %s: %w", ErrPageRead, r.name, v.TXID(), err)
	}
	return data, miss, nil
}

// stop ends the poller whatever the number of users (VFS.Close).
func (r *Replica) stop() {
	r.mu.Lock()
	stop, done := r.stopPoll, r.pollDone
	r.stopPoll, r.pollDone = nil, nil
	r.refs = 0
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Stats are a replica's counters since it was opened, for
// PRAGMA litestream_stats and litestream_stats(). The JSON names are the
// ones the PRAGMA prints.
type Stats struct {
	// TXID is the latest state known, as a number (ltx.TXID would print
	// as hex).
	TXID uint64 `json:"txid"`
	// Pages served from the page cache, fetched from the remote, and
	// joined to another reader's in-flight fetch.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	Waits  int64 `json:"waits"`
	// Range requests for pages (retries included), their bytes, retries.
	Fetches      int64 `json:"fetches"`
	BytesFetched int64 `json:"bytes_fetched"`
	Retries      int64 `json:"retries"`
	// The page cache's contents and bound.
	CachePages     int   `json:"cache_pages"`
	CacheBytes     int64 `json:"cache_bytes"`
	CacheMaxBytes  int64 `json:"cache_max_bytes"`
	CacheEvictions int64 `json:"cache_evictions"`
	// Polls run, and seconds since one last confirmed the replica current.
	Polls          int64   `json:"polls"`
	PollLagSeconds float64 `json:"poll_lag_seconds"`
	// Prefetches issued for B-tree pages and for sequential scans.
	TreePrefetches int64 `json:"tree_prefetches"`
	ReadAheads     int64 `json:"read_aheads"`
	// LatencyMS is the moving average of remote request durations.
	LatencyMS float64 `json:"latency_ms"`
	// Requests are the requests sent to the storage since the replica was
	// opened, by the kind a store bills (a listing's pages, HEADs and
	// retries included), where the backend counts them (all do).
	Requests RequestStats `json:"requests"`
}

// RequestStats are storage requests by kind (remote.RequestCounts).
type RequestStats struct {
	List   int64 `json:"list"`
	Head   int64 `json:"head"`
	Get    int64 `json:"get"`
	Put    int64 `json:"put"`
	Delete int64 `json:"delete"`
}

// Stats returns the replica's counters (see Stats).
func (r *Replica) Stats() Stats {
	st := r.Status()
	fs := r.fetcher.Stats()
	cs := r.fetcher.Cache().Stats()
	return Stats{
		TXID: uint64(st.TXID), Hits: fs.Hits, Misses: fs.Misses, Waits: fs.Waits,
		Fetches: fs.Fetches, BytesFetched: fs.Bytes, Retries: fs.Retries,
		CachePages: cs.Pages, CacheBytes: cs.Bytes, CacheMaxBytes: cs.MaxBytes, CacheEvictions: cs.Evictions,
		Polls: st.Polls, PollLagSeconds: st.Lag.Seconds(),
		TreePrefetches: st.TreePrefetches, ReadAheads: st.ReadAheads,
		LatencyMS: float64(st.Latency.Microseconds()) / 1000,
		Requests:  requestStats(r.client),
	}
}

func requestStats(c remote.Client) RequestStats {
	n, _ := remote.CountsOf(c)
	return RequestStats{List: n.List, Head: n.Head, Get: n.Get, Put: n.Put, Delete: n.Delete}
}
