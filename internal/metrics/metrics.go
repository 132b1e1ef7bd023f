// Package metrics holds IoTFlow's Prometheus metrics: one registry per
// service (no global state), the series every part of the service reports
// to, and the /metrics handler. A nil *Metrics records nothing, so that
// tests and tools can leave metrics out.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Metrics is the service's registry and the series it records directly.
// Values that something else already counts (queue depth, cache hits, pool
// statistics) are read at scrape time through the Gauge/Counter funcs.
type Metrics struct {
	reg *prometheus.Registry

	requests          *prometheus.CounterVec
	requestDuration   *prometheus.HistogramVec
	telemetryAccepted *prometheus.CounterVec
	telemetryRejected *prometheus.CounterVec
	rateLimited       *prometheus.CounterVec
	batchReadings     prometheus.Histogram
	commitDuration    *prometheus.HistogramVec

	// The series of every request, resolved once: looking up a vector's
	// series by label values hashes them anew each time.
	requestSeries            sync.Map // requestKey → *requestSeries
	acceptedNew, acceptedDup prometheus.Counter
}

type requestKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	count prometheus.Counter
	took  prometheus.Observer
}

// New returns Metrics on a fresh registry, with the Go runtime and process
// collectors registered.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iotflow_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "iotflow_http_request_duration_seconds",
			Help:    "Time from the request's headers to the end of its answer, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		telemetryAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iotflow_telemetry_records_accepted_total",
			Help: "Telemetry records acknowledged as stored; duplicate=true for a repeated message_id answered with the stored reading.",
		}, []string{"duplicate"}),
		telemetryRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iotflow_telemetry_records_rejected_total",
			Help: "Telemetry records refused, by reason (a batch refused before its records were read counts once).",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iotflow_rate_limit_rejections_total",
			Help: "Requests answered 429, by the limit that refused them.",
		}, []string{"limit"}),
		batchReadings: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iotflow_write_batch_readings",
			Help:    "Readings per write transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}),
		commitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "iotflow_write_commit_duration_seconds",
			Help:    "Duration of write transactions, by result (ok or error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.requestDuration, m.telemetryAccepted, m.telemetryRejected,
		m.rateLimited, m.batchReadings, m.commitDuration,
	)
	m.acceptedNew, m.acceptedDup = m.telemetryAccepted.WithLabelValues("false"), m.telemetryAccepted.WithLabelValues("true")
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Registry is the registry itself, for tests and further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request records one answered HTTP request.
func (m *Metrics) Request(route, method string, status int, took time.Duration) {
	if m == nil {
		return
	}
	k := requestKey{route, method, status}
	v, ok := m.requestSeries.Load(k)
	if !ok {
		v, _ = m.requestSeries.LoadOrStore(k, &requestSeries{
			count: m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
			took:  m.requestDuration.WithLabelValues(route, method),
		})
	}
	rs := v.(*requestSeries)
	rs.count.Inc()
	rs.took.Observe(took.Seconds())
}

// TelemetryAccepted counts n acknowledged records, of which dup were
// repeated message ids.
func (m *Metrics) TelemetryAccepted(n, dup int) {
	if m == nil {
		return
	}
	if n-dup > 0 {
		m.acceptedNew.Add(float64(n - dup))
	}
	if dup > 0 {
		m.acceptedDup.Add(float64(dup))
	}
}

// Rejection reasons of telemetry records.
const (
	ReasonInvalid      = "invalid"       // failed validation (400)
	ReasonTooLarge     = "too_large"     // body over the limit (413)
	ReasonUnauthorized = "unauthorized"  // no valid key, or an inactive device (401, 403)
	ReasonRateLimited  = "rate_limited"  // 429
	ReasonQueueFull    = "queue_full"    // the write queue had no room (503)
	ReasonUnavailable  = "unavailable"   // the database failed or was too slow (503)
	ReasonShuttingDown = "shutting_down" // arrived while the service stopped (503)
	ReasonOther        = "other"
)

// TelemetryRejected counts n refused records.
func (m *Metrics) TelemetryRejected(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.telemetryRejected.WithLabelValues(reason).Add(float64(n))
}

// RateLimited counts a 429 from the named limit.
func (m *Metrics) RateLimited(limit string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(limit).Inc()
}

// Commit records one write transaction; it fits ingest.Options.Observe.
func (m *Metrics) Commit(readings int, took time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.commitDuration.WithLabelValues(result).Observe(took.Seconds())
	if err == nil {
		m.batchReadings.Observe(float64(readings))
	}
}

// GaugeFunc registers a gauge read from f at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
}

// CounterFunc registers a counter read from f at scrape time; f must never
// decrease.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
}

// Pools registers the statistics of a store's connection pools.
func (m *Metrics) Pools(stats func() []iotflow.PoolStats) {
	if m != nil {
		m.reg.MustRegister(poolCollector{stats: stats})
	}
}

var (
	poolConns = prometheus.NewDesc("iotflow_db_pool_connections",
		"Database connections by pool and state (in_use, idle).", []string{"pool", "state"}, nil)
	poolMax = prometheus.NewDesc("iotflow_db_pool_max_connections",
		"Most connections the pool opens.", []string{"pool"}, nil)
	poolWaits = prometheus.NewDesc("iotflow_db_pool_waits_total",
		"Connection acquisitions that had to wait for a free connection.", []string{"pool"}, nil)
	poolWaitSeconds = prometheus.NewDesc("iotflow_db_pool_wait_seconds_total",
		"Time spent waiting for a free connection.", []string{"pool"}, nil)
)

// poolCollector reads pool statistics at scrape time.
type poolCollector struct {
	stats func() []iotflow.PoolStats
}

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConns
	ch <- poolMax
	ch <- poolWaits
	ch <- poolWaitSeconds
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.stats() {
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(p.InUse), p.Name, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(p.Idle), p.Name, "idle")
		ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(p.Max), p.Name)
		ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(p.WaitCount), p.Name)
		ch <- prometheus.MustNewConstMetric(poolWaitSeconds, prometheus.CounterValue, p.WaitDuration.Seconds(), p.Name)
	}
}

// LabeledGauges registers a family of gauges with one label, read from f
// at scrape time: f returns each label value's gauge, or false when it
// cannot tell now (the family is then left out of that scrape).
func (m *Metrics) LabeledGauges(name, help, label string, f func() (map[string]float64, bool)) {
	if m != nil {
		m.reg.MustRegister(labeledCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f})
	}
}

type labeledCollector struct {
	desc *prometheus.Desc
	f    func() (map[string]float64, bool)
}

func (c labeledCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c labeledCollector) Collect(ch chan<- prometheus.Metric) {
	values, ok := c.f()
	if !ok {
		return
	}
	for v, x := range values {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, x, v)
	}
}
