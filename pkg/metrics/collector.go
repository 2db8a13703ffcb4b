// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"strconv"

	"github.com/pwatch/pwatch/internal/promtext"
)

func gauge(name, help string) *promtext.Family {
	return &promtext.Family{Name: name, Help: help, Type: promtext.Gauge}
}

func counter(name, help string) *promtext.Family {
	return &promtext.Family{Name: name, Help: help, Type: promtext.Counter}
}

// serviceFamilies turn a Source snapshot into metrics at each scrape, so
// nothing is copied ahead of time; they show the counts of the services
// listed (at 0 before their first).
func (m *Metrics) serviceFamilies() []*promtext.Family {
	var (
		up           = gauge("pwatch_service_up", "1 when the service is Up, else 0.")
		state        = gauge("pwatch_service_state", "1 for the service's current state, 0 for the others.")
		processes    = gauge("pwatch_service_processes", "Watched top-level processes of the service.")
		inGrace      = gauge("pwatch_service_restarts_in_grace", "Restart attempts within grace (compared with retry_count).")
		attemptsLeft = gauge("pwatch_service_attempts_left", "Restart attempts retry_count still allows within grace.")
		next         = gauge("pwatch_service_next_attempt_seconds", "Seconds until the next restart attempt (what=attempt, a pause between attempts) or re-arm (what=rearm, after a retry over); absent when none is due.")
		queue        = gauge("pwatch_accept_queue_length", "Connections waiting in the listening socket's accept queue.")
		backlog      = gauge("pwatch_accept_queue_backlog", "The listening socket's accept-queue limit (listen backlog).")
		watcher      = gauge("pwatch_watcher_info", "The death-detection backend in use (always 1).")
		bpfEvents    = counter("pwatch_bpf_ringbuf_events_total", "Events read from the BPF ring buffer.")
		bpfLost      = counter("pwatch_bpf_ringbuf_lost_total", "Events the kernel dropped because the BPF ring buffer was full.")
		bpfRescans   = counter("pwatch_bpf_rescans_total", "Re-checks of the watched processes after ring-buffer losses.")
		reboots      = gauge("pwatch_reboots_in_window", "Automatic reboots the reboot guard counts within its window.")
		syslogDrops  = counter("pwatch_syslog_dropped_total", "Catalogue lines syslog never got (socket missing or full, or the logging queue full); stderr has them.")
	)
	seen := map[string]bool{}
	for _, s := range m.src.Services() {
		if seen[s.Name] {
			continue // a duplicate would fail the whole scrape
		}
		seen[s.Name] = true
		up.Add(boolValue(s.Up), "service", s.Name)
		processes.Add(float64(s.Processes), "service", s.Name)
		inGrace.Add(float64(s.RestartsInGrace), "service", s.Name)
		attemptsLeft.Add(float64(s.AttemptsLeft), "service", s.Name)
		if s.Next != "" {
			next.Add(s.NextIn.Seconds(), "service", s.Name, "what", s.Next)
		}
		m.counts.show(s.Name)
		known := false
		for _, st := range States {
			known = known || st == s.State
			state.Add(boolValue(st == s.State), "service", s.Name, "state", st)
		}
		if !known && s.State != "" {
			state.Add(1, "service", s.Name, "state", s.State)
		}
		ports := map[int]bool{}
		for _, sock := range s.Sockets {
			if ports[sock.Port] {
				continue
			}
			ports[sock.Port] = true
			p := strconv.Itoa(sock.Port)
			queue.Add(float64(sock.Queue), "service", s.Name, "port", p)
			backlog.Add(float64(sock.Backlog), "service", s.Name, "port", p)
		}
	}
	if b := m.src.Backend(); b != "" {
		watcher.Add(1, "backend", b)
	}
	if st, ok := m.src.BPFStats(); ok {
		bpfEvents.Add(float64(st.Received))
		bpfLost.Add(float64(st.Lost))
		bpfRescans.Add(float64(st.Rescans))
	}
	if n, ok := m.src.RebootCount(); ok {
		reboots.Add(float64(n))
	}
	if ls, ok := m.src.(LogSource); ok {
		syslogDrops.Add(float64(ls.SyslogDropped()))
	}
	return []*promtext.Family{up, state, processes, inGrace, attemptsLeft, next, queue, backlog,
		watcher, bpfEvents, bpfLost, bpfRescans, reboots, syslogDrops}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
