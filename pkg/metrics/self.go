// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"runtime"
	rtmetrics "runtime/metrics"

	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/internal/promtext"
)

// goSamples are the Go runtime's figures shown, by runtime/metrics name
// (read without stopping the world, unlike runtime.ReadMemStats).
var goSamples = []struct {
	runtime, name, help string
	typ                 promtext.Type
}{
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects, reachable or not yet swept.", promtext.Gauge},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", "Bytes of memory the Go runtime has mapped from the system.", promtext.Gauge},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "Garbage collection cycles completed.", promtext.Counter},
}

// selfFamilies are pcheck's own: the Go runtime's (go_*) and its process's
// (process_*, from /proc/self as node_exporter reads it). A read of
// /proc/self that fails leaves the process_* series out, and is logged.
func (m *Metrics) selfFamilies() []*promtext.Family {
	goroutines := gauge("go_goroutines", "Goroutines that currently exist.")
	goroutines.Add(float64(runtime.NumGoroutine()))
	info := gauge("go_info", "The Go version pcheck was built with (always 1).")
	info.Add(1, "version", runtime.Version())
	fams := []*promtext.Family{goroutines, info}

	samples := make([]rtmetrics.Sample, len(goSamples))
	for i, s := range goSamples {
		samples[i].Name = s.runtime
	}
	rtmetrics.Read(samples)
	for i, s := range goSamples {
		f := &promtext.Family{Name: s.name, Help: s.help, Type: s.typ}
		switch v := samples[i].Value; v.Kind() {
		case rtmetrics.KindUint64:
			f.Add(float64(v.Uint64()))
		case rtmetrics.KindFloat64:
			f.Add(v.Float64())
		}
		fams = append(fams, f)
	}
	return append(fams, m.processFamilies()...)
}

func (m *Metrics) processFamilies() []*promtext.Family {
	self, err := procfs.Self()
	if err != nil {
		m.log.Warn("metrics scrape error", "error", err)
		return nil
	}
	st, err := self.Stat()
	if err != nil {
		m.log.Warn("metrics scrape error", "error", err)
		return nil
	}
	cpu := counter("process_cpu_seconds_total", "User and system CPU time pcheck spent, in seconds.")
	cpu.Add(st.CPUTime())
	rss := gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
	rss.Add(float64(st.ResidentMemory()))
	vsz := gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
	vsz.Add(float64(st.VirtualMemory()))
	threads := gauge("go_threads", "OS threads pcheck has.")
	threads.Add(float64(st.NumThreads))
	fams := []*promtext.Family{cpu, rss, vsz, threads}
	if t, err := st.StartTime(); err == nil {
		start := gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.")
		start.Add(t)
		fams = append(fams, start)
	}
	if n, err := self.FileDescriptorsLen(); err == nil {
		open := gauge("process_open_fds", "Open file descriptors.")
		open.Add(float64(n))
		fams = append(fams, open)
	}
	if l, err := self.Limits(); err == nil {
		max := gauge("process_max_fds", "The limit of open file descriptors.")
		max.Add(float64(l.OpenFiles))
		fams = append(fams, max)
	}
	return fams
}
