// SPDX-License-Identifier: Apache-2.0

package metrics

import "github.com/prometheus/client_golang/prometheus"

// UsageSource is what a Source also offers when it samples the services'
// trees (pkg/limits): the pwatch_service_memory_bytes, _cpu_seconds_total,
// _fds, _threads and _limit series are left out for a Source that is not
// one.
type UsageSource interface {
	// Usage is the last sample of every service with limits.
	Usage() []ServiceUsage
}

// ServiceUsage is one service's last sample and its limits.
type ServiceUsage struct {
	Name string
	// MemoryBytes (PSS) and FDs are sampled only with their limit set.
	MemoryBytes uint64
	HasMemory   bool
	CPUSeconds  float64
	FDs         int
	HasFDs      bool
	Threads     int
	// Limits are by pfile key (memory_max in bytes, cpu_max in percent);
	// 0 is not set.
	Limits map[string]float64
}

// usageCollector turns the samples into metrics at each scrape, and
// shows the limit restarts (at 0 for each limit set before its first, so
// that rate() sees the first).
type usageCollector struct {
	src                          UsageSource
	restarts                     *prometheus.CounterVec
	memory, cpu, fds, threads, l *prometheus.Desc
}

func newUsageCollector(src UsageSource, restarts *prometheus.CounterVec) *usageCollector {
	svc := []string{"service"}
	return &usageCollector{
		src: src, restarts: restarts,
		memory:  prometheus.NewDesc("pwatch_service_memory_bytes", "Memory of the service's whole tree: the sum of its processes' PSS (sampled with memory_max only).", svc, nil),
		cpu:     prometheus.NewDesc("pwatch_service_cpu_seconds_total", "CPU the service's tree used between samples, since it was first sampled (processes that exit between two samples take their last period's CPU with them).", svc, nil),
		fds:     prometheus.NewDesc("pwatch_service_fds", "Open file descriptors of the service's tree (sampled with fds_max only).", svc, nil),
		threads: prometheus.NewDesc("pwatch_service_threads", "Threads of the service's tree.", svc, nil),
		l:       prometheus.NewDesc("pwatch_service_limit", "The service's limit (memory_max in bytes, cpu_max in percent of one core, fds_max, threads_max); absent when not set.", []string{"service", "limit"}, nil),
	}
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.memory, c.cpu, c.fds, c.threads, c.l} {
		ch <- d
	}
	c.restarts.Describe(ch)
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	emit := emitter(ch)
	seen := map[string]bool{}
	for _, u := range c.src.Usage() {
		if seen[u.Name] {
			continue
		}
		seen[u.Name] = true
		if u.HasMemory {
			emit(c.memory, prometheus.GaugeValue, float64(u.MemoryBytes), u.Name)
		}
		if u.HasFDs {
			emit(c.fds, prometheus.GaugeValue, float64(u.FDs), u.Name)
		}
		emit(c.cpu, prometheus.CounterValue, u.CPUSeconds, u.Name)
		emit(c.threads, prometheus.GaugeValue, float64(u.Threads), u.Name)
		for limit, v := range u.Limits {
			if v > 0 {
				emit(c.l, prometheus.GaugeValue, v, u.Name, limit)
				_, _ = c.restarts.GetMetricWithLabelValues(u.Name, limit)
			}
		}
	}
	c.restarts.Collect(ch)
}

// LimitRestart counts one restart of service because limit was exceeded
// for limit_for (pkg/limits calls it once the restart is taken).
func (m *Metrics) LimitRestart(service, limit string) {
	if m == nil {
		return
	}
	m.inc(m.limitRestarts, "limit restart", service, limit)
}
