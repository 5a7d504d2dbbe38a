// Package metrics exposes the replication daemon's state as Prometheus
// metrics: per database (sync and checkpoint counts and durations, TXID, WAL
// size, replication lag) and per remote operation (requests, bytes, errors
// and latency of GET, PUT, LIST and DELETE, plus compactions, snapshots and
// retention deletions as seen in the writes and deletes that reach the
// remote).
//
// Everything is measured from the outside of the writer and the backends: a
// remote.Client wrapper counts the requests, a writer.Observer counts syncs
// and checkpoints, and gauges are read from writer.Status at scrape time. The
// registry is per Metrics value (no global state), so tests can run several.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer"
)

// Remote operation labels.
const (
	OpGet    = "GET"    // OpenLTXFile
	OpPut    = "PUT"    // WriteLTXFile
	OpList   = "LIST"   // LTXFiles
	OpDelete = "DELETE" // DeleteLTXFiles, DeleteAll
)

// Metrics holds one registry and every collector of the daemon.
type Metrics struct {
	reg *prometheus.Registry

	syncs          *prometheus.CounterVec
	syncErrors     *prometheus.CounterVec
	syncSeconds    *prometheus.HistogramVec
	ckpts          *prometheus.CounterVec
	ckptErrors     *prometheus.CounterVec
	ckptSeconds    *prometheus.HistogramVec
	requests       *prometheus.CounterVec
	reqErrors      *prometheus.CounterVec
	reqBytes       *prometheus.CounterVec
	reqSeconds     *prometheus.HistogramVec
	filesWritten   *prometheus.CounterVec
	compactions    *prometheus.CounterVec
	snapshots      *prometheus.CounterVec
	retentionFiles *prometheus.CounterVec

	ls *lsMetrics // Litestream's names (litestream.go)

	mu     sync.Mutex
	dbs    map[string]func() writer.Status
	counts map[string]countsSource // storage request counts, by database (client.go)
}

// New returns a Metrics with every collector registered, plus the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), dbs: map[string]func() writer.Status{}, counts: map[string]countsSource{}, ls: newLSMetrics()}
	dbL := []string{"db"}
	remL := []string{"db", "type", "op"}
	durBuckets := []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_sync_total", Help: "Syncs run (with or without a new file)."}, dbL)
	m.syncErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_sync_errors_total", Help: "Syncs that failed."}, dbL)
	m.syncSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "litestream_sync_duration_seconds", Help: "Duration of syncs.", Buckets: durBuckets}, dbL)
	m.ckpts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_checkpoint_total", Help: "Checkpoints run by the writer."}, dbL)
	m.ckptErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_checkpoint_errors_total", Help: "Checkpoints that failed."}, dbL)
	m.ckptSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "litestream_checkpoint_duration_seconds", Help: "Duration of checkpoints.", Buckets: durBuckets}, dbL)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_remote_requests_total", Help: "Requests to the remote by operation."}, remL)
	m.reqErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_remote_errors_total", Help: "Failed requests to the remote by operation."}, remL)
	m.reqBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_remote_bytes_total", Help: "Bytes sent (PUT) or received (GET) by operation."}, remL)
	m.reqSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "litestream_remote_request_duration_seconds", Help: "Latency of remote requests (GET: until the body is closed).", Buckets: durBuckets}, remL)
	m.filesWritten = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_remote_files_written_total", Help: "LTX files written to the remote, by level."}, []string{"db", "level"})
	m.compactions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_compaction_total", Help: "Compacted files written (levels 1-8)."}, dbL)
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_snapshot_total", Help: "Snapshot files written (level 9)."}, dbL)
	m.retentionFiles = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_retention_deleted_files_total", Help: "LTX files deleted from the remote (retention, compaction clean-up)."}, dbL)
	m.reg.MustRegister(m.syncs, m.syncErrors, m.syncSeconds, m.ckpts, m.ckptErrors, m.ckptSeconds,
		m.requests, m.reqErrors, m.reqBytes, m.reqSeconds, m.filesWritten, m.compactions, m.snapshots,
		m.retentionFiles, &statusCollector{m: m, started: time.Now()},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.ls.collectors()...)
	return m
}

// Registry returns the registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// AddDB makes the gauges of database db (its path) read from status at
// every scrape. Call it once per database.
func (m *Metrics) AddDB(db string, status func() writer.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dbs[db] = status
	// Make the counters appear at 0 from the start, so rate() works from
	// the first scrape.
	m.syncs.WithLabelValues(db)
	m.syncErrors.WithLabelValues(db)
	m.ckpts.WithLabelValues(db)
	m.ckptErrors.WithLabelValues(db)
	m.compactions.WithLabelValues(db)
	m.snapshots.WithLabelValues(db)
	m.retentionFiles.WithLabelValues(db)
	m.ls.addDB(db)
}

// RemoveDB drops database db's series: it is no longer replicated.
func (m *Metrics) RemoveDB(db string) {
	m.mu.Lock()
	delete(m.dbs, db)
	delete(m.counts, db)
	m.mu.Unlock()
	labels := prometheus.Labels{"db": db}
	for _, v := range []*prometheus.CounterVec{m.syncs, m.syncErrors, m.ckpts, m.ckptErrors, m.compactions,
		m.snapshots, m.retentionFiles, m.filesWritten, m.requests, m.reqErrors, m.reqBytes} {
		v.DeletePartialMatch(labels)
	}
	for _, v := range []*prometheus.HistogramVec{m.syncSeconds, m.ckptSeconds, m.reqSeconds} {
		v.DeletePartialMatch(labels)
	}
	m.ls.removeDB(db)
}

// Observer returns the writer.Observer that counts db's syncs and checkpoints.
func (m *Metrics) Observer(db string) writer.Observer { return &observer{m: m, db: db} }

type observer struct {
	m  *Metrics
	db string
}

func (o *observer) SyncDone(elapsed time.Duration, err error) {
	o.m.mu.Lock()
	status := o.m.dbs[o.db]
	o.m.mu.Unlock()
	var st writer.Status
	if status != nil {
		st = status()
	}
	o.m.ls.syncDone(o.db, elapsed, err, st, status != nil)
	o.m.syncs.WithLabelValues(o.db).Inc()
	o.m.syncSeconds.WithLabelValues(o.db).Observe(elapsed.Seconds())
	if err != nil {
		o.m.syncErrors.WithLabelValues(o.db).Inc()
	}
}

func (o *observer) CheckpointDone(mode string, elapsed time.Duration, err error) {
	o.m.ls.checkpointDone(o.db, mode, elapsed, err)
	o.m.ckpts.WithLabelValues(o.db).Inc()
	o.m.ckptSeconds.WithLabelValues(o.db).Observe(elapsed.Seconds())
	if err != nil {
		o.m.ckptErrors.WithLabelValues(o.db).Inc()
	}
}

// RetentionDone sets Litestream's gauge of the level-0 files of the last
// retention pass by status (its names: eligible = deleted, not_compacted,
// too_recent).
func (o *observer) RetentionDone(l0 writer.L0Census) {
	g := o.m.ls.l0Deletion
	g.WithLabelValues(o.db, "eligible").Set(float64(l0.Deleted))
	g.WithLabelValues(o.db, "not_compacted").Set(float64(l0.NotCompacted))
	g.WithLabelValues(o.db, "too_recent").Set(float64(l0.TooRecent))
}

// Lag is the replication lag of a database: how long ago the replica was
// last known to hold everything committed locally, that is, the time since
// the last successful sync (a successful sync leaves nothing committed
// before it un-uploaded). It grows while syncs fail, e.g. when the remote is
// unreachable, and drops back when one succeeds. Before the first sync it is
// the time since start.
func Lag(s writer.Status, started, now time.Time) time.Duration {
	last := s.LastSync
	if last.IsZero() {
		last = started
	}
	if last.IsZero() {
		return 0
	}
	return max(now.Sub(last), 0)
}

// statusCollector reads each database's writer.Status at scrape time.
type statusCollector struct {
	m       *Metrics
	started time.Time // lag before the first sync counts from here
}

var (
	// litestream_txid is also Litestream's name, type and label.
	descTXID     = prometheus.NewDesc("litestream_txid", "The current transaction ID (the last one uploaded).", []string{"db"}, nil)
	descWAL      = prometheus.NewDesc("litestream_wal_bytes", "Size of the WAL file at the last sync.", []string{"db"}, nil)
	descLag      = prometheus.NewDesc("litestream_replication_lag_seconds", "Seconds since the replica was last known to hold every local commit (last successful sync).", []string{"db"}, nil)
	descLastSync = prometheus.NewDesc("litestream_last_sync_timestamp_seconds", "Unix time of the last successful sync.", []string{"db"}, nil)
	descUpload   = prometheus.NewDesc("litestream_last_upload_timestamp_seconds", "Unix time of the last LTX file uploaded.", []string{"db"}, nil)
	descCkptTime = prometheus.NewDesc("litestream_last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint.", []string{"db"}, nil)
	descPending  = prometheus.NewDesc("litestream_upload_pending", "1 while a staged file waits for a retried upload.", []string{"db"}, nil)
	descErr      = prometheus.NewDesc("litestream_last_sync_failed", "1 when the last sync or checkpoint failed.", []string{"db"}, nil)
	descDBSize   = prometheus.NewDesc("litestream_db_bytes", "Database size (pages times page size) at the last uploaded TXID.", []string{"db"}, nil)
	descStorage  = prometheus.NewDesc("litestream_storage_requests_total",
		"Requests sent to the storage, by the kind a store bills (LIST, HEAD, GET, PUT, DELETE): listing pages, HEADs and retries included.",
		[]string{"db", "type", "kind"}, nil)
)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTXID, descWAL, descLag, descLastSync, descUpload, descCkptTime, descPending, descErr, descDBSize, descStorage} {
		ch <- d
	}
	c.m.ls.describe(ch)
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	dbs := make(map[string]func() writer.Status, len(c.m.dbs))
	for k, v := range c.m.dbs {
		dbs[k] = v
	}
	counts := make(map[string]countsSource, len(c.m.counts))
	for k, v := range c.m.counts {
		counts[k] = v
	}
	c.m.mu.Unlock()
	for db, src := range counts {
		n, _ := remote.CountsOf(src.c)
		for _, k := range remote.RequestKinds {
			ch <- prometheus.MustNewConstMetric(descStorage, prometheus.CounterValue, float64(n.Of(k)), db, src.typ, k.String())
		}
	}
	now := time.Now()
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for db, status := range dbs {
		s := status()
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, db)
		}
		g(descTXID, float64(s.TXID))
		g(descWAL, float64(s.WALSize))
		g(descLag, Lag(s, c.started, now).Seconds())
		g(descLastSync, unix(s.LastSync))
		g(descUpload, unix(s.LastUpload))
		g(descCkptTime, unix(s.LastCheckpoint))
		g(descPending, b(s.Pending))
		g(descErr, b(s.LastError != ""))
		g(descDBSize, float64(s.Commit)*float64(s.PageSize))
		c.m.ls.collect(ch, db, s)
	}
}

func levelLabel(level int) string { return strconv.Itoa(level) }
