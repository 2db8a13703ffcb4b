// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeCollector turns a Source snapshot and the counts into metrics at
// each scrape, so nothing is copied into the registry ahead of time.
type scrapeCollector struct {
	src    Source
	counts *counters

	up, state, processes, inGrace  *prometheus.Desc
	attemptsLeft, next             *prometheus.Desc
	queue, backlog                 *prometheus.Desc
	watcher                        *prometheus.Desc
	bpfEvents, bpfLost, bpfRescans *prometheus.Desc
	reboots                        *prometheus.Desc
	syslogDropped                  *prometheus.Desc
}

func newScrapeCollector(src Source, c *counters) *scrapeCollector {
	svc := []string{"service"}
	port := []string{"service", "port"}
	return &scrapeCollector{
		src: src, counts: c,
		up:           prometheus.NewDesc("pwatch_service_up", "1 when the service is Up, else 0.", svc, nil),
		state:        prometheus.NewDesc("pwatch_service_state", "1 for the service's current state, 0 for the others.", []string{"service", "state"}, nil),
		processes:    prometheus.NewDesc("pwatch_service_processes", "Watched top-level processes of the service.", svc, nil),
		inGrace:      prometheus.NewDesc("pwatch_service_restarts_in_grace", "Restart attempts within grace (compared with retry_count).", svc, nil),
		attemptsLeft: prometheus.NewDesc("pwatch_service_attempts_left", "Restart attempts retry_count still allows within grace.", svc, nil),
		next:         prometheus.NewDesc("pwatch_service_next_attempt_seconds", "Seconds until the next restart attempt (what=attempt, a pause between attempts) or re-arm (what=rearm, after a retry over); absent when none is due.", []string{"service", "what"}, nil),
		queue:        prometheus.NewDesc("pwatch_accept_queue_length", "Connections waiting in the listening socket's accept queue.", port, nil),
		backlog:      prometheus.NewDesc("pwatch_accept_queue_backlog", "The listening socket's accept-queue limit (listen backlog).", port, nil),
		watcher:      prometheus.NewDesc("pwatch_watcher_info", "The death-detection backend in use (always 1).", []string{"backend"}, nil),
		bpfEvents:    prometheus.NewDesc("pwatch_bpf_ringbuf_events_total", "Events read from the BPF ring buffer.", nil, nil),
		bpfLost:      prometheus.NewDesc("pwatch_bpf_ringbuf_lost_total", "Events the kernel dropped because the BPF ring buffer was full.", nil, nil),
		bpfRescans:   prometheus.NewDesc("pwatch_bpf_rescans_total", "Re-checks of the watched processes after ring-buffer losses.", nil, nil),
		reboots:      prometheus.NewDesc("pwatch_reboots_in_window", "Automatic reboots the reboot guard counts within its window.", nil, nil),
		syslogDropped: prometheus.NewDesc("pwatch_syslog_dropped_total",
			"Catalogue lines syslog never got (socket missing or full, or the logging queue full); stderr has them.", nil, nil),
	}
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.up, c.state, c.processes, c.inGrace, c.attemptsLeft, c.next,
		c.queue, c.backlog, c.watcher, c.bpfEvents, c.bpfLost, c.bpfRescans, c.reboots, c.syslogDropped,
	} {
		ch <- d
	}
	for _, v := range c.counts.vecs() {
		v.Describe(ch)
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	emit := emitter(ch)
	seen := map[string]bool{}
	for _, s := range c.src.Services() {
		if seen[s.Name] {
			continue // a duplicate would fail the whole scrape
		}
		seen[s.Name] = true
		emit(c.up, prometheus.GaugeValue, boolValue(s.Up), s.Name)
		emit(c.processes, prometheus.GaugeValue, float64(s.Processes), s.Name)
		emit(c.inGrace, prometheus.GaugeValue, float64(s.RestartsInGrace), s.Name)
		emit(c.attemptsLeft, prometheus.GaugeValue, float64(s.AttemptsLeft), s.Name)
		if s.Next != "" {
			emit(c.next, prometheus.GaugeValue, s.NextIn.Seconds(), s.Name, s.Next)
		}
		c.counts.show(s.Name)
		known := false
		for _, st := range States {
			known = known || st == s.State
			emit(c.state, prometheus.GaugeValue, boolValue(st == s.State), s.Name, st)
		}
		if !known && s.State != "" {
			emit(c.state, prometheus.GaugeValue, 1, s.Name, s.State)
		}
		ports := map[int]bool{}
		for _, sock := range s.Sockets {
			if ports[sock.Port] {
				continue
			}
			ports[sock.Port] = true
			p := strconv.Itoa(sock.Port)
			emit(c.queue, prometheus.GaugeValue, float64(sock.Queue), s.Name, p)
			emit(c.backlog, prometheus.GaugeValue, float64(sock.Backlog), s.Name, p)
		}
	}
	for _, v := range c.counts.vecs() {
		v.Collect(ch)
	}
	if b := c.src.Backend(); b != "" {
		emit(c.watcher, prometheus.GaugeValue, 1, b)
	}
	if st, ok := c.src.BPFStats(); ok {
		emit(c.bpfEvents, prometheus.CounterValue, float64(st.Received))
		emit(c.bpfLost, prometheus.CounterValue, float64(st.Lost))
		emit(c.bpfRescans, prometheus.CounterValue, float64(st.Rescans))
	}
	if n, ok := c.src.RebootCount(); ok {
		emit(c.reboots, prometheus.GaugeValue, float64(n))
	}
	if ls, ok := c.src.(LogSource); ok {
		emit(c.syslogDropped, prometheus.CounterValue, float64(ls.SyslogDropped()))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emitter sends const metrics to ch. It turns a bad label value (not UTF-8)
// into a scrape error for that one series rather than a panic.
func emitter(ch chan<- prometheus.Metric) func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	return func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
}
