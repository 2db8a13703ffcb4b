// SPDX-License-Identifier: Apache-2.0

// Package metrics serves pcheck's Prometheus metrics and its health
// endpoint. It knows nothing of the daemon: what already lives there
// (service states, the watcher's counters, the reboot count) is read through
// Source at scrape time; what happens over time (probes, restarts, stalls)
// is pushed in through the Metrics methods.
package metrics

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pwatch/pwatch/internal/promtext"
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
	src    Source
	probes histogramVec
	deaths counterVec
	counts *counters
	// limitRestarts counts the restarts of pkg/limits, by limit.
	limitRestarts counterVec
	handler       http.Handler
	log           *slog.Logger
}

// New returns the registry of src's metrics, plus the Go runtime's and the
// process's own (go_*, process_*). src is read at every scrape and must
// not be nil.
func New(src Source, opts Options) *Metrics {
	m := &Metrics{
		src: src,
		probes: newHistogramVec("pwatch_probe_duration_seconds",
			"Time a stall-check probe took; result is ok or fail (a failed probe often lasts its timeout).",
			ProbeBuckets, "service", "check", "result"),
		deaths: newCounterVec("pwatch_deaths_total",
			"Deaths of a service's top-level processes, by cause: exit, signal, oom, pcheck (a stall check's kill), unknown.",
			"service", "cause"),
		counts: newCounters(opts.RestartReasons),
		limitRestarts: newCounterVec("pwatch_limit_restarts_total",
			"Restarts because the service's tree exceeded a limit (memory_max, cpu_max, fds_max, threads_max) for limit_for.",
			"service", "limit"),
		log: orDiscard(opts.Logger),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", m.serve)
	m.handler = mux
	return m
}

// serve writes a scrape, as it is made (5,000 services make megabytes).
// A series that cannot be written (a label value that is not UTF-8) is
// left out and logged; the rest is served. A scraper that goes away
// midway is not pcheck's error.
func (m *Metrics) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", promtext.ContentType)
	if skipped, _ := promtext.Write(w, m.families()); len(skipped) > 0 {
		m.log.Warn("metrics scrape error", "error", errors.Join(skipped...)) // one line a scrape
	}
}

// families are a scrape's: src's, what was pushed, and pcheck's own.
func (m *Metrics) families() []*promtext.Family {
	fams := m.serviceFamilies()
	fams = append(fams, m.probes.family(), m.deaths.family())
	for _, c := range m.counts.vecs() {
		fams = append(fams, c.family())
	}
	if us, ok := m.src.(UsageSource); ok {
		fams = append(fams, usageFamilies(us, m.limitRestarts)...)
	}
	if ns, ok := m.src.(NotifySource); ok {
		fams = append(fams, notifyFamilies(ns)...)
	}
	fams = append(fams, m.selfFamilies()...)
	slices.SortStableFunc(fams, func(a, b *promtext.Family) int { return strings.Compare(a.Name, b.Name) })
	return fams
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
	if err := m.probes.observe(d.Seconds(), service, check, result); err != nil {
		// labels that are not UTF-8: dropped, never a panic
		m.log.Warn("probe metric dropped", "service", service, "check", check, "error", err)
	}
}

// Death counts one death of a top-level process of service by its cause
// (msg.Cause*). The supervisor calls it when it logs the death.
func (m *Metrics) Death(service, cause string) {
	if m == nil {
		return
	}
	if err := m.deaths.inc(service, cause); err != nil {
		m.log.Warn("death metric dropped", "service", service, "cause", cause, "error", err)
	}
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
func (m *Metrics) inc(v counterVec, what string, labels ...string) {
	if err := v.inc(labels...); err != nil {
		m.log.Warn(what+" metric dropped", "labels", labels, "error", err)
	}
}

// Forget drops what was pushed for service: a reload removed it. Its state
// series go on their own, as Source no longer lists it.
func (m *Metrics) Forget(service string) {
	if m == nil {
		return
	}
	m.probes.forget(service)
	m.deaths.forget(service)
	m.limitRestarts.forget(service)
	m.counts.forget(service)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// counters are the restart, stall and retry-over counters. The scrape
// shows them for the services Source lists, at 0 before the first count,
// so that rate() sees the first one.
type counters struct {
	reasons                      []string // restarts shown at 0 for each
	restarts, stalls, retryOvers counterVec
}

func newCounters(reasons []string) *counters {
	return &counters{
		reasons: slices.Clone(reasons),
		restarts: newCounterVec("pwatch_restarts_total",
			"Restart attempts since pcheck started, by reason (down, stall, socket, start, rearm).", "service", "reason"),
		retryOvers: newCounterVec("pwatch_retry_overs_total",
			"Retry overs since pcheck started (retry_count attempts used up within grace).", "service"),
		stalls: newCounterVec("pwatch_stalls_total",
			"Stalls detected since pcheck started (a check failing for its whole duration).", "service"),
	}
}

func (c *counters) vecs() []counterVec {
	return []counterVec{c.restarts, c.retryOvers, c.stalls}
}

// show makes service's counters exist (at 0 if never counted). A name
// that is not UTF-8 is left out: its other series report the error.
func (c *counters) show(service string) {
	for _, r := range c.reasons {
		_ = c.restarts.show(service, r)
	}
	_ = c.stalls.show(service)
	_ = c.retryOvers.show(service)
}

// forget drops service's counters.
func (c *counters) forget(service string) {
	for _, v := range c.vecs() {
		v.forget(service)
	}
}
