// SPDX-License-Identifier: Apache-2.0

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
	counts  *counters
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
		counts: newCounters(opts.RestartReasons),
		log:    log,
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.probes,
		m.deaths,
		newScrapeCollector(src, m.counts),
	)
	if ns, ok := src.(NotifySource); ok {
		m.reg.MustRegister(newNotifyCollector(ns))
	}
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
	m.inc(m.counts.restarts, "restart", service, reason)
}

// RetryOver counts one retry over of service: its retries within grace
// were used up. The supervisor calls it before the retry-over action.
func (m *Metrics) RetryOver(service string) {
	if m == nil {
		return
	}
	m.inc(m.counts.retryOvers, "retry over", service)
}

// Stall counts one stall of service: a stall check failed for its whole
// duration. The stall tracker calls it when it declares the stall.
func (m *Metrics) Stall(service string) {
	if m == nil {
		return
	}
	m.inc(m.counts.stalls, "stall", service)
}

// inc adds one to a counter, dropping (and logging) labels that are not
// UTF-8 rather than panic.
func (m *Metrics) inc(v *prometheus.CounterVec, what string, labels ...string) {
	c, err := v.GetMetricWithLabelValues(labels...)
	if err != nil {
		m.log.Warn(what+" metric dropped", "labels", labels, "error", err)
		return
	}
	c.Inc()
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

// counters are the restart, stall and retry-over counters. The scrape
// collector shows them for the services Source lists, at 0 before the
// first count, so that rate() sees the first one.
type counters struct {
	reasons                      []string // restarts shown at 0 for each
	restarts, stalls, retryOvers *prometheus.CounterVec
}

func newCounters(reasons []string) *counters {
	return &counters{
		reasons: slices.Clone(reasons),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pwatch_restarts_total",
			Help: "Restart attempts since pcheck started, by reason (down, stall, socket, start, rearm).",
		}, []string{"service", "reason"}),
		retryOvers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pwatch_retry_overs_total",
			Help: "Retry overs since pcheck started (retry_count attempts used up within grace).",
		}, []string{"service"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pwatch_stalls_total",
			Help: "Stalls detected since pcheck started (a check failing for its whole duration).",
		}, []string{"service"}),
	}
}

func (c *counters) vecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{c.restarts, c.retryOvers, c.stalls}
}

// show makes service's counters exist (at 0 if never counted). A name
// that is not UTF-8 is left out: its other series report the error.
func (c *counters) show(service string) {
	for _, r := range c.reasons {
		_, _ = c.restarts.GetMetricWithLabelValues(service, r)
	}
	_, _ = c.stalls.GetMetricWithLabelValues(service)
	_, _ = c.retryOvers.GetMetricWithLabelValues(service)
}

// forget drops service's counters.
func (c *counters) forget(service string) {
	for _, v := range c.vecs() {
		v.DeletePartialMatch(prometheus.Labels{"service": service})
	}
}
