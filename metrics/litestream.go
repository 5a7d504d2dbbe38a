package metrics

// Litestream v0.5.18's metrics, with its names, types and labels (its
// db.go, store.go and internal/internal.go), so that its Grafana dashboard
// and alerts work unchanged. They sit beside this package's own metrics.

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/litestream-go/litestream/writer"
)

// lsMetrics are the Litestream-named collectors.
type lsMetrics struct {
	// Per database, from the writer's status at scrape time.
	dbSize *prometheus.Desc // litestream_db_size
	walSize,
	txid,
	diskFull *prometheus.Desc

	totalWALBytes *prometheus.CounterVec // litestream_total_wal_bytes{db}
	syncCount     *prometheus.CounterVec // litestream_sync_count{db}
	syncErrors    *prometheus.CounterVec // litestream_sync_error_count{db}
	syncSeconds   *prometheus.CounterVec // litestream_sync_seconds{db}
	ckptCount     *prometheus.CounterVec // litestream_checkpoint_count{db,mode}
	ckptErrors    *prometheus.CounterVec // litestream_checkpoint_error_count{db,mode}
	ckptSeconds   *prometheus.CounterVec // litestream_checkpoint_seconds{db,mode}
	verifyErrors  *prometheus.CounterVec // litestream_compaction_verify_error_count{db}

	validationChecks *prometheus.CounterVec // litestream_validation_checks_total{db,level,result}
	validationOK     *prometheus.GaugeVec   // litestream_last_validation_success{db,level}
	validationOKTime *prometheus.GaugeVec   // litestream_last_validation_success_timestamp_seconds{db,level}

	opTotal    *prometheus.CounterVec   // litestream_replica_operation_total{replica_type,operation}
	opBytes    *prometheus.CounterVec   // litestream_replica_operation_bytes{replica_type,operation}
	opSeconds  *prometheus.HistogramVec // litestream_replica_operation_duration_seconds{replica_type,operation}
	opErrors   *prometheus.CounterVec   // litestream_replica_operation_errors_total{replica_type,operation,code}
	l0Deletion *prometheus.GaugeVec     // litestream_l0_retention_files_total{db,status}

	// walMu guards walSeen: the WAL position last counted per database.
	walMu   sync.Mutex
	walSeen map[string]walMark
}

type walMark struct {
	frames int64
	size   int64
}

func newLSMetrics() *lsMetrics {
	dbL := []string{"db"}
	ckL := []string{"db", "mode"}
	opL := []string{"replica_type", "operation"}
	return &lsMetrics{
		dbSize:   prometheus.NewDesc("litestream_db_size", "The current size of the real DB", dbL, nil),
		walSize:  prometheus.NewDesc("litestream_wal_size", "The current size of the real WAL", dbL, nil),
		txid:     prometheus.NewDesc("litestream_txid", "The current transaction ID", dbL, nil),
		diskFull: prometheus.NewDesc("litestream_disk_full", "Whether replication is paused because the local disk is full", dbL, nil),

		totalWALBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_total_wal_bytes", Help: "Total number of bytes written to shadow WAL"}, dbL),
		syncCount:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_sync_count", Help: "Number of sync operations performed"}, dbL),
		syncErrors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_sync_error_count", Help: "Number of sync errors that have occurred"}, dbL),
		syncSeconds:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_sync_seconds", Help: "Time spent syncing shadow WAL, in seconds"}, dbL),
		ckptCount:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_checkpoint_count", Help: "Number of checkpoint operations performed"}, ckL),
		ckptErrors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_checkpoint_error_count", Help: "Number of checkpoint errors that have occurred"}, ckL),
		ckptSeconds:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_checkpoint_seconds", Help: "Time spent checkpointing WAL, in seconds"}, ckL),
		verifyErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_compaction_verify_error_count", Help: "Number of post-compaction verification failures"}, dbL),

		validationChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_validation_checks_total", Help: "Number of replica validation checks by result (success, invalid, or error)."}, []string{"db", "level", "result"}),
		validationOK:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "litestream_last_validation_success", Help: "Whether the last replica validation check succeeded (1) or failed (0). Zero before the first check completes."}, []string{"db", "level"}),
		validationOKTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "litestream_last_validation_success_timestamp_seconds", Help: "Unix time of the last successful replica validation check. Zero until a check succeeds."}, []string{"db", "level"}),

		opTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_replica_operation_total", Help: "The number of replica operations performed"}, opL),
		opBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_replica_operation_bytes", Help: "The number of bytes used by replica operations"}, opL),
		opSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "litestream_replica_operation_duration_seconds", Help: "Duration of replica operations by type and operation",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60}}, opL),
		opErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "litestream_replica_operation_errors_total", Help: "Number of replica operation errors by type, operation, and error code"}, []string{"replica_type", "operation", "code"}),
		l0Deletion: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "litestream_l0_retention_files_total", Help: "Number of L0 files by status during retention enforcement"}, []string{"db", "status"}),

		walSeen: map[string]walMark{},
	}
}

func (l *lsMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.totalWALBytes, l.syncCount, l.syncErrors, l.syncSeconds,
		l.ckptCount, l.ckptErrors, l.ckptSeconds, l.verifyErrors,
		l.validationChecks, l.validationOK, l.validationOKTime,
		l.opTotal, l.opBytes, l.opSeconds, l.opErrors, l.l0Deletion}
}

// addDB makes a database's series exist from the start at 0, so that
// rate() works from the first scrape and the dashboard finds them.
func (l *lsMetrics) addDB(db string) {
	l.totalWALBytes.WithLabelValues(db)
	l.syncCount.WithLabelValues(db)
	l.syncErrors.WithLabelValues(db)
	l.syncSeconds.WithLabelValues(db)
	// The normal mode's series exist from the start; the forced ones
	// (RESTART, TRUNCATE) appear when first used.
	l.ckptCount.WithLabelValues(db, writer.CheckpointPassive)
	l.ckptErrors.WithLabelValues(db, writer.CheckpointPassive)
	l.ckptSeconds.WithLabelValues(db, writer.CheckpointPassive)
	l.verifyErrors.WithLabelValues(db)
}

// removeDB drops a database's series (unregistered, or gone from a
// watched directory).
func (l *lsMetrics) removeDB(db string) {
	labels := prometheus.Labels{"db": db}
	for _, v := range []*prometheus.CounterVec{l.totalWALBytes, l.syncCount, l.syncErrors, l.syncSeconds,
		l.ckptCount, l.ckptErrors, l.ckptSeconds, l.verifyErrors, l.validationChecks} {
		v.DeletePartialMatch(labels)
	}
	for _, v := range []*prometheus.GaugeVec{l.validationOK, l.validationOKTime, l.l0Deletion} {
		v.DeletePartialMatch(labels)
	}
	l.walMu.Lock()
	delete(l.walSeen, db)
	l.walMu.Unlock()
}

// syncDone counts one sync and the WAL bytes it consumed: the frames
// uploaded since the last count (all of them after the log restarted).
func (l *lsMetrics) syncDone(db string, elapsed time.Duration, err error, st writer.Status, ok bool) {
	l.syncCount.WithLabelValues(db).Inc()
	l.syncSeconds.WithLabelValues(db).Add(elapsed.Seconds())
	if err != nil {
		l.syncErrors.WithLabelValues(db).Inc()
	}
	if !ok || st.PageSize == 0 {
		return
	}
	l.walMu.Lock()
	prev, seen := l.walSeen[db]
	l.walSeen[db] = walMark{frames: st.WALFrames, size: st.WALSize}
	l.walMu.Unlock()
	delta := st.WALFrames
	if seen && st.WALFrames >= prev.frames && st.WALSize >= prev.size {
		delta = st.WALFrames - prev.frames
	}
	if delta > 0 {
		l.totalWALBytes.WithLabelValues(db).Add(float64(delta) * float64(st.PageSize+24))
	}
}

func (l *lsMetrics) checkpointDone(db, mode string, elapsed time.Duration, err error) {
	l.ckptCount.WithLabelValues(db, mode).Inc()
	l.ckptSeconds.WithLabelValues(db, mode).Add(elapsed.Seconds())
	if err != nil {
		l.ckptErrors.WithLabelValues(db, mode).Inc()
	}
}

// operation counts one replica operation.
func (l *lsMetrics) operation(typ, op string, elapsed time.Duration, err error) {
	l.opTotal.WithLabelValues(typ, op).Inc()
	l.opSeconds.WithLabelValues(typ, op).Observe(elapsed.Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		l.opErrors.WithLabelValues(typ, op, errorCode(err)).Inc()
	}
}

// errorCode classifies an operation's error for the code label. Backends
// name the service's error code in their messages where there is one
// ("NoSuchKey", "AccessDenied", ...); what cannot be told apart is "error".
func errorCode(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "NotFound"
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	}
	msg := err.Error()
	for _, code := range []string{"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket",
		"NoSuchKey", "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "XAmzContentSHA256Mismatch"} {
		if strings.Contains(msg, code) {
			return code
		}
	}
	return "error"
}

func (l *lsMetrics) bytes(typ, op string, n int64) {
	if n > 0 {
		l.opBytes.WithLabelValues(typ, op).Add(float64(n))
	}
}

// collect emits the status gauges of one database.
func (l *lsMetrics) collect(ch chan<- prometheus.Metric, db string, s writer.Status) {
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, db)
	}
	g(l.dbSize, float64(s.Commit)*float64(s.PageSize))
	g(l.walSize, float64(s.WALSize))
	full := 0.0
	if strings.Contains(s.LastError, "no space left on device") {
		full = 1
	}
	g(l.diskFull, full)
}

func (l *lsMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{l.dbSize, l.walSize, l.diskFull} {
		ch <- d
	}
}

// CompactionVerifyError counts a failed post-compaction check of db
// (verify-compaction).
func (m *Metrics) CompactionVerifyError(db string) {
	m.ls.verifyErrors.WithLabelValues(db).Inc()
}

// Validation records one validation check of a level of db: result is
// "success", "invalid" or "error".
func (m *Metrics) Validation(db string, level int, result string) {
	lv := strconv.Itoa(level)
	m.ls.validationChecks.WithLabelValues(db, lv, result).Inc()
	if result == "success" {
		m.ls.validationOK.WithLabelValues(db, lv).Set(1)
		m.ls.validationOKTime.WithLabelValues(db, lv).SetToCurrentTime()
	} else {
		m.ls.validationOK.WithLabelValues(db, lv).Set(0)
	}
}
