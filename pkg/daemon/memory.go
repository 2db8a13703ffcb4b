// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"runtime/debug"
	"time"
)

// When pcheck gives back a start's or a reload's memory: once every
// supervisor is at rest, looked at first memoryReturnDelay after the last
// start or reload and then every memoryRecheck, at most until
// memoryReturnBy has passed (a service may recover for long).
const (
	memoryReturnDelay = time.Second
	memoryRecheck     = time.Second
	memoryReturnBy    = 5 * time.Minute
)

// returnMemoryLocked gives back, once a start or a reload is over, the
// heap their first looks and scripts grew: the runtime keeps what its
// last collection's goal allowed (twice the burst's peak) until a
// collection forced two minutes on, and scavenges slowly, so a 5,000-
// service start left ~100 MB more resident for minutes. One collection
// costs a few milliseconds, once: the checks before it cost O(services)
// a second while a start's scripts run, and nothing after. d.mu is held.
func (d *daemon) returnMemoryLocked() {
	d.memReturnBy = time.Now().Add(memoryReturnBy)
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
	busy := false
	for _, r := range d.services {
		if !r.svc.AtRest() {
			busy = true
			break
		}
	}
	if busy && time.Now().Before(d.memReturnBy) {
		d.memReturn.Reset(memoryRecheck)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	debug.FreeOSMemory()
}
