// SPDX-License-Identifier: Apache-2.0

package metrics

import "testing"

type usageSource struct {
	fakeSource
	usage []ServiceUsage
}

func (u *usageSource) Usage() []ServiceUsage { return u.usage }

func TestUsageIsScraped(t *testing.T) {
	src := &usageSource{usage: []ServiceUsage{
		{Name: "php", MemoryBytes: 1 << 30, HasMemory: true, CPUSeconds: 12.5, FDs: 40, HasFDs: true, Threads: 9,
			Limits: map[string]float64{"memory_max": 2 << 30, "cpu_max": 0, "fds_max": 256}},
		{Name: "java", CPUSeconds: 3, Threads: 80, Limits: map[string]float64{"threads_max": 500}},
	}}
	m := New(src, Options{})
	m.LimitRestart("php", "memory_max")
	fams := scrape(t, serve(t, m.Handler(), nil))
	mustValue(t, fams, 1<<30, "pwatch_service_memory_bytes", "service", "php")
	mustValue(t, fams, 12.5, "pwatch_service_cpu_seconds_total", "service", "php")
	mustValue(t, fams, 40, "pwatch_service_fds", "service", "php")
	mustValue(t, fams, 9, "pwatch_service_threads", "service", "php")
	mustValue(t, fams, 2<<30, "pwatch_service_limit", "service", "php", "limit", "memory_max")
	mustAbsent(t, fams, "pwatch_service_limit", "service", "php", "limit", "cpu_max")
	mustValue(t, fams, 1, "pwatch_limit_restarts_total", "service", "php", "limit", "memory_max")
	mustValue(t, fams, 0, "pwatch_limit_restarts_total", "service", "php", "limit", "fds_max") // shown before its first
	mustAbsent(t, fams, "pwatch_limit_restarts_total", "service", "php", "limit", "cpu_max")   // not set
	// Not sampled without its limit: absent, never a false 0.
	mustAbsent(t, fams, "pwatch_service_memory_bytes", "service", "java")
	mustAbsent(t, fams, "pwatch_service_fds", "service", "java")
	mustValue(t, fams, 80, "pwatch_service_threads", "service", "java")

	fams = scrape(t, serve(t, New(&fakeSource{}, Options{}).Handler(), nil))
	mustAbsent(t, fams, "pwatch_service_threads", "service", "php")
}
