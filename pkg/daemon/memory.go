// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// When pcheck gives back a start's or a reload's memory: once every
// supervisor is at rest and pcheck has allocated less than memoryQuiet in
// the last memoryRecheck, looked at first memoryReturnDelay after the last
// start or reload and then every memoryRecheck, at most until
// memoryReturnBy has passed (a service may recover for long).
const (
	memoryReturnDelay = time.Second
	memoryRecheck     = time.Second
	memoryQuiet       = 1 << 20
	memoryReturnBy    = 5 * time.Minute
)

// allocatedMetric is the heap's cumulative allocations: read without
// stopping the world, unlike runtime.ReadMemStats.
const allocatedMetric = "/gc/heap/allocs:bytes"

// returnMemoryLocked gives back, once a start or a reload is over, the
// heap their first looks and scripts grew: the runtime keeps what its
// last collection's goal allowed (twice the burst's peak) until a
// collection forced two minutes on, and scavenges slowly, so a 5,000-
// service start left ~100 MB more resident for minutes. "Over" is both
// every supervisor at rest and the heap quiet: the exits of 5,000 start
// scripts, handled after the last service is Up, made 50-90 MB more
// garbage after a return that had looked at the services alone. One
// collection costs a few milliseconds, once: the checks before it cost
// O(services) a second while a start's scripts run, and nothing after.
// d.mu is held.
func (d *daemon) returnMemoryLocked() {
	d.memReturnBy = time.Now().Add(memoryReturnBy)
	d.memAllocated = allocated()
	if d.memReturn == nil {
		d.memReturn = time.AfterFunc(memoryReturnDelay, d.returnMemoryAtRest)
		return
	}
	d.memReturn.Reset(memoryReturnDelay)
}

func (d *daemon) returnMemoryAtRest() {
	if d.ctx.Err() != nil {
		return // pcheck is ending
	}
	d.mu.Lock()
	now := allocated()
	busy := now-d.memAllocated >= memoryQuiet || !d.allAtRestLocked()
	d.memAllocated = now
	if busy && time.Now().Before(d.memReturnBy) {
		d.memReturn.Reset(memoryRecheck)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	debug.FreeOSMemory()
}

// allAtRestLocked tells whether every supervisor is at rest; d.mu is held.
func (d *daemon) allAtRestLocked() bool {
	for _, r := range d.services {
		if !r.svc.AtRest() {
			return false
		}
	}
	return true
}

// allocated is how many bytes the heap has allocated since pcheck began.
func allocated() uint64 {
	s := []metrics.Sample{{Name: allocatedMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0 // not in this runtime: the services' rest decides alone
	}
	return s[0].Value.Uint64()
}
