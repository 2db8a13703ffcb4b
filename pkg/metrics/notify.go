// SPDX-License-Identifier: Apache-2.0

package metrics

import "github.com/prometheus/client_golang/prometheus"

// NotifySource is what a Source also offers when pcheck runs a notify
// command (--notify-command): the pwatch_notify_* series are left out for
// a Source that is not one, or says ok false.
type NotifySource interface {
	NotifyStats() (stats NotifyStats, ok bool)
}

// NotifyStats are the notifier's counts (pkg/notify.Stats).
type NotifyStats struct {
	// Sent and Failed count runs of the command.
	Sent, Failed uint64
	// Suppressed counts events held back by the rate limit; Dropped those
	// lost to a full queue.
	Suppressed, Dropped uint64
}

// notifyCollector reads NotifyStats at each scrape.
type notifyCollector struct {
	src                               NotifySource
	sent, failed, suppressed, dropped *prometheus.Desc
}

func newNotifyCollector(src NotifySource) *notifyCollector {
	return &notifyCollector{
		src:        src,
		sent:       prometheus.NewDesc("pwatch_notify_sent_total", "Runs of the notify command that succeeded.", nil, nil),
		failed:     prometheus.NewDesc("pwatch_notify_failed_total", "Runs of the notify command that failed: refused by the trust rule, not started, a non-zero exit, or killed at its timeout.", nil, nil),
		suppressed: prometheus.NewDesc("pwatch_notify_suppressed_total", "Events not notified because of the per-service rate limit (said in one summary per window).", nil, nil),
		dropped:    prometheus.NewDesc("pwatch_notify_dropped_total", "Notifications lost because the notify queue was full.", nil, nil),
	}
}

func (c *notifyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sent, c.failed, c.suppressed, c.dropped} {
		ch <- d
	}
}

func (c *notifyCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.src.NotifyStats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.Sent))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(s.Failed))
	ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(s.Suppressed))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
}
