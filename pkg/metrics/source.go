// SPDX-License-Identifier: Apache-2.0

package metrics

import "time"

// Source is what a scrape reads: state that already lives in the daemon
// (supervisors, the watcher, the reboot guard). It is called from HTTP
// handlers, concurrently with the daemon, so it must be safe for that and
// cheap: no process scans, only snapshots.
type Source interface {
	ServiceLister
	// Backend is the death-detection backend in use ("ebpf", "netlink",
	// ...); "" leaves pwatch_watcher_info out.
	Backend() string
	// BPFStats are the ebpf backend's ring-buffer counters; ok is false
	// when another backend runs.
	BPFStats() (stats BPFStats, ok bool)
	// RebootCount is the reboot guard's count within its window; ok is
	// false when there is no guard or its state file cannot be read.
	RebootCount() (count int, ok bool)
}

// LogSource is what a Source also offers when it knows how its logging
// fares; pwatch_syslog_dropped_total is left out for a Source that is not
// one.
type LogSource interface {
	// SyslogDropped counts the catalogue lines syslog never got (its
	// socket missing or full, or the logger's queue full).
	SyslogDropped() uint64
}

// ServiceLister is the part of Source the health endpoint needs.
type ServiceLister interface {
	// Services is a snapshot of every service, in a stable order.
	Services() []ServiceState
}

// ServiceState is one service as a scrape sees it.
type ServiceState struct {
	Name string
	// State is the supervisor's state name: Up, Down, Restarting, Stalled,
	// Paused or RetryOver.
	State string
	// Up is true when the service counts as available (State is Up).
	Up bool
	// Processes is the number of watched top-level processes.
	Processes int
	// RestartsInGrace is the number of restart attempts within grace (what
	// padmin status shows, and what retry_count is compared with).
	RestartsInGrace int
	// AttemptsLeft are the restart attempts retry_count still allows
	// within grace.
	AttemptsLeft int
	// NextIn is how long until the next restart attempt (a pause between
	// attempts) or re-arm (rearm_after after a retry over) is due, for
	// Next "attempt" or "rearm"; Next "" leaves the series out.
	Next   string
	NextIn time.Duration
	// Sockets are the accept queues of the service's listening ports, when
	// known; nil leaves the accept-queue metrics out.
	Sockets []Socket
	// Checks are the service's stall-check blocks.
	Checks []Check
}

// Check is one stall-check block as the health endpoint reports it.
type Check struct {
	Block string
	// State is starting, ok, failing, stopped or idle (supervise's names).
	State string
	// FailingSince is when a failing block's failures began; zero if
	// unknown.
	FailingSince time.Time
}

// Answering says the block's last probe succeeded, as far as a load
// balancer cares: starting and failing blocks are not answering.
func (c Check) Answering() bool { return c.State != "starting" && c.State != "failing" }

// Socket is the accept queue of one listening port.
type Socket struct {
	Port int
	// Queue is the connections waiting to be accepted; Backlog the most
	// the kernel will queue (the listen backlog).
	Queue, Backlog int
}

// BPFStats are the ebpf backend's counters (exitwatch.EBPFStats).
type BPFStats struct {
	// Received counts events read from the ring buffer.
	Received uint64
	// Lost counts events the kernel dropped because the ring buffer was full.
	Lost uint64
	// Rescans counts re-checks of the watched set after losses.
	Rescans uint64
}

// States are the supervisor's states, in the order pwatch_service_state
// lists them: each service has one series per state, 1 for the current one.
var States = []string{"Up", "Down", "Restarting", "Stalled", "Paused", "RetryOver"}
