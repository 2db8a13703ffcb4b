// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// metricsSource is what a scrape reads: snapshots of the supervisors, the
// watcher and the reboot guard.
type metricsSource struct{ d *daemon }

func (m metricsSource) Services() []metrics.ServiceState {
	return m.d.serviceStates((*supervise.Service).Status)
}

// healthSource is what /healthz reads: the supervisors' kept state only,
// so that no request, however many, makes pcheck read /proc.
type healthSource struct{ d *daemon }

func (h healthSource) Services() []metrics.ServiceState {
	return h.d.serviceStates((*supervise.Service).Kept)
}

// serviceStates is every service as status says it.
func (d *daemon) serviceStates(status func(*supervise.Service) supervise.Status) []metrics.ServiceState {
	svcs, _ := d.pick("")
	out := make([]metrics.ServiceState, 0, len(svcs))
	for _, s := range svcs {
		st := status(s)
		ms := metrics.ServiceState{
			Name: st.Name, State: st.State.String(), Up: st.State == supervise.Up,
			Processes: len(st.PIDs), RestartsInGrace: st.Restarts,
			AttemptsLeft: st.AttemptsLeft, Next: st.Next, NextIn: st.NextIn,
		}
		for _, c := range s.Checks() {
			ms.Checks = append(ms.Checks, metrics.Check{Block: c.Check.Block, State: c.State(ms.Up), FailingSince: c.FailingSince})
			if c.Listen.Backlog >= 0 {
				ms.Sockets = append(ms.Sockets, metrics.Socket{Port: c.Check.Port, Queue: c.Listen.AcceptQueue, Backlog: c.Listen.Backlog})
			}
		}
		out = append(out, ms)
	}
	return out
}

func (m metricsSource) Backend() string { return m.d.mux.Backend().Name() }

func (m metricsSource) BPFStats() (metrics.BPFStats, bool) {
	s, ok := m.d.mux.EBPFStats()
	if !ok {
		return metrics.BPFStats{}, false
	}
	return metrics.BPFStats{Received: s.Received, Lost: s.Lost, Rescans: s.Rescans}, true
}

func (m metricsSource) RebootCount() (int, bool) {
	n, err := m.d.guard.Count()
	return n, err == nil
}

// SyslogDropped counts the catalogue lines syslog never got.
func (m metricsSource) SyslogDropped() uint64 { return m.d.log.SyslogDropped() }
