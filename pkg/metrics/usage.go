// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"maps"
	"slices"

	"github.com/pwatch/pwatch/internal/promtext"
)

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

// usageFamilies turn the samples into metrics at each scrape, and show
// the limit restarts (at 0 for each limit set before its first, so that
// rate() sees the first).
func usageFamilies(src UsageSource, restarts counterVec) []*promtext.Family {
	var (
		memory  = gauge("pwatch_service_memory_bytes", "Memory of the service's whole tree: the sum of its processes' PSS (sampled with memory_max only).")
		cpu     = counter("pwatch_service_cpu_seconds_total", "CPU the service's tree used between samples, since it was first sampled (processes that exit between two samples take their last period's CPU with them).")
		fds     = gauge("pwatch_service_fds", "Open file descriptors of the service's tree (sampled with fds_max only).")
		threads = gauge("pwatch_service_threads", "Threads of the service's tree.")
		limits  = gauge("pwatch_service_limit", "The service's limit (memory_max in bytes, cpu_max in percent of one core, fds_max, threads_max); absent when not set.")
	)
	seen := map[string]bool{}
	for _, u := range src.Usage() {
		if seen[u.Name] {
			continue
		}
		seen[u.Name] = true
		if u.HasMemory {
			memory.Add(float64(u.MemoryBytes), "service", u.Name)
		}
		if u.HasFDs {
			fds.Add(float64(u.FDs), "service", u.Name)
		}
		cpu.Add(u.CPUSeconds, "service", u.Name)
		threads.Add(float64(u.Threads), "service", u.Name)
		for _, limit := range slices.Sorted(maps.Keys(u.Limits)) {
			if v := u.Limits[limit]; v > 0 {
				limits.Add(v, "service", u.Name, "limit", limit)
				_ = restarts.show(u.Name, limit)
			}
		}
	}
	return []*promtext.Family{memory, cpu, fds, threads, limits, restarts.family()}
}

// LimitRestart counts one restart of service because limit was exceeded
// for limit_for (pkg/limits calls it once the restart is taken).
func (m *Metrics) LimitRestart(service, limit string) {
	if m == nil {
		return
	}
	m.inc(m.limitRestarts, "limit restart", service, limit)
}
