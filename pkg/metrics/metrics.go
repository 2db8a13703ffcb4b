// Package metrics serves pcheck's Prometheus metrics and its health
// endpoint. It knows nothing of the daemon: what already lives there
// (service states, the watcher's counters, the reboot count) is read through
// Source at scrape time; what happens over time (probes, restarts, stalls)
// is pushed in through the Metrics methods.
package metrics

import (
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ProbeBuckets are pwatch_probe_duration_seconds's buckets: local probes
// answer in milliseconds; the top ones catch probes that wait for their
// timeout.
var ProbeBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Options tune New.
type Options struct {
	// RestartReasons are shown at 0 for every service before its first
	// restart for that reason, so that rate() sees the first one
	// (supervise.ReasonDown, ReasonStall, ReasonSocket, ReasonStart).
	RestartReasons []string
	// Logger receives the errors of scrapes; nil discards them.
	Logger *slog.Logger
}

// Metrics is pcheck's metric registry. Its methods may be called on a nil
// *Metrics (metrics off), and concurrently.
type Metrics struct {
	reg     *prometheus.Registry
	probes  *prometheus.HistogramVec
	deaths  *prometheus.CounterVec
	counts  *counts
	handler http.Handler
	log     *slog.Logger
}

// New returns the registry of src's metrics, plus the Go runtime's and the
// process's own (go_*, process_*). src is read at every scrape and must
// not be nil.
func New(src Source, opts Options) *Metrics {
	log := orDiscard(opts.Logger)
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		probes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pwatch_probe_duration_seconds",
			Help:    "Time a stall-check probe took; result is ok or fail (a failed probe often lasts its timeout).",
			Buckets: ProbeBuckets,
		}, []string{"service", "check", "result"}),
		deaths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pwatch_deaths_total",
			Help: "Deaths of a service's top-level processes, by cause: exit, signal, oom, pcheck (a stall check's kill), unknown.",
		}, []string{"service", "cause"}),
		counts: newCounts(opts.RestartReasons),
		log:    log,
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.probes,
		m.deaths,
		newScrapeCollector(src, m.counts),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	m.handler = mux
	return m
}

// Handler serves GET /metrics (and HEAD); other paths are 404.
func (m *Metrics) Handler() http.Handler { return m.handler }

// ObserveProbe records one stall-check probe of service: check is the
// pfile block's name (e.g. _bi_webserv), d how long it took, ok whether it
// succeeded. The probe runner calls it after every probe.
func (m *Metrics) ObserveProbe(service, check string, d time.Duration, ok bool) {
	if m == nil {
		return
	}
	result := "fail"
	if ok {
		result = "ok"
	}
	h, err := m.probes.GetMetricWithLabelValues(service, check, result)
	if err != nil { // labels that are not UTF-8: drop, never panic
		m.log.Warn("probe metric dropped", "service", service, "check", check, "error", err)
		return
	}
	h.Observe(d.Seconds())
}

// Death counts one death of a top-level process of service by its cause
// (msg.Cause*). The supervisor calls it when it logs the death.
func (m *Metrics) Death(service, cause string) {
	if m == nil {
		return
	}
	c, err := m.deaths.GetMetricWithLabelValues(service, cause)
	if err != nil {
		m.log.Warn("death metric dropped", "service", service, "cause", cause, "error", err)
		return
	}
	c.Inc()
}

// Restart counts one restart attempt of service for reason (down, stall,
// socket, start). The supervisor calls it each time it runs the restart
// script.
func (m *Metrics) Restart(service, reason string) {
	if m == nil {
		return
	}
	m.counts.restart(service, reason)
}

// RetryOver counts one retry over of service: its retries within grace
// were used up. The supervisor calls it before the retry-over action.
func (m *Metrics) RetryOver(service string) {
	if m == nil {
		return
	}
	m.counts.retryOver(service)
}

// Stall counts one stall of service: a stall check failed for its whole
// duration. The stall tracker calls it when it declares the stall.
func (m *Metrics) Stall(service string) {
	if m == nil {
		return
	}
	m.counts.stall(service)
}

// Forget drops what was pushed for service: a reload removed it. Its state
// series go on their own, as Source no longer lists it.
func (m *Metrics) Forget(service string) {
	if m == nil {
		return
	}
	m.probes.DeletePartialMatch(prometheus.Labels{"service": service})
	m.deaths.DeletePartialMatch(prometheus.Labels{"service": service})
	m.counts.forget(service)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// counts are the restart and stall counters. They are emitted by the scrape
// collector for the services Source lists, so a removed service's series
// go away with it.
type counts struct {
	reasons []string // shown at 0 before the first restart

	mu         sync.Mutex
	restarts   map[string]map[string]uint64 // service -> reason -> count
	stalls     map[string]uint64
	retryOvers map[string]uint64
}

func newCounts(reasons []string) *counts {
	return &counts{
		reasons:    slices.Clone(reasons),
		restarts:   map[string]map[string]uint64{},
		stalls:     map[string]uint64{},
		retryOvers: map[string]uint64{},
	}
}

func (c *counts) restart(service, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byReason := c.restarts[service]
	if byReason == nil {
		byReason = map[string]uint64{}
		c.restarts[service] = byReason
	}
	byReason[reason]++
}

func (c *counts) stall(service string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalls[service]++
}

func (c *counts) retryOver(service string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retryOvers[service]++
}

func (c *counts) forget(service string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.restarts, service)
	delete(c.stalls, service)
	delete(c.retryOvers, service)
}

// retryOversOf is service's retry overs.
func (c *counts) retryOversOf(service string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retryOvers[service]
}

// of returns service's restarts by reason (the zero-shown reasons
// included) and its stalls.
func (c *counts) of(service string) (restarts map[string]uint64, stalls uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	restarts = make(map[string]uint64, len(c.reasons))
	for _, r := range c.reasons {
		restarts[r] = 0
	}
	for r, n := range c.restarts[service] {
		restarts[r] = n
	}
	return restarts, c.stalls[service]
}
