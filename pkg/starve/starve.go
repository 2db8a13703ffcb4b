// SPDX-License-Identifier: Apache-2.0

// Package starve tells a starved process from a stalled one: it reads how
// long threads waited on a run queue for a CPU (schedstat's run_delay) and
// the host's CPU pressure (PSI). A stopped, deadlocked or sleeping server
// waits on no run queue; a live server on an overloaded node does.
package starve

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/prometheus/procfs"
)

// Share is the part of a period a wait must fill to be starvation: a
// quarter. It is large enough that the scheduling noise of a busy but
// healthy host (milliseconds a second) never reaches it.
const Share = 4

// MinWait is the least wait that is starvation, however short the period:
// a thread woken a millisecond late is scheduling, not starvation.
const MinWait = 100 * time.Millisecond

// Meter samples the run-queue wait of pcheck's threads and of a server's.
type Meter struct {
	// Proc is the proc file system's root; "" is /proc.
	Proc string
	// Self is pcheck's pid; 0 is os.Getpid().
	Self int
	// PIDs returns the server's processes (the top-level ones and those
	// below them); nil: none.
	PIDs func() []int
}

// Sample is a reading of the counters.
type Sample struct {
	self, server map[int]time.Duration // per thread id: run_delay
	psi          time.Duration         // host cpu "some" total
	psiOK        bool
}

// Sample reads the counters now. Processes and threads that are gone are
// left out: their waits are over.
func (m *Meter) Sample() Sample {
	root := m.Proc
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	self := m.Self
	if self == 0 {
		self = os.Getpid()
	}
	s := Sample{self: map[int]time.Duration{}, server: map[int]time.Duration{}}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return s // no proc file system: no evidence
	}
	readThreads(fs, self, s.self)
	if m.PIDs != nil {
		for _, pid := range m.PIDs() {
			readThreads(fs, pid, s.server)
		}
	}
	if psi, err := fs.PSIStatsForResource("cpu"); err == nil && psi.Some != nil {
		s.psi, s.psiOK = time.Duration(psi.Some.Total)*time.Microsecond, true
	}
	return s
}

// readThreads adds the run_delay of each of pid's threads (schedstat's
// second field: nanoseconds spent waiting on a run queue) to into.
func readThreads(fs procfs.FS, pid int, into map[int]time.Duration) {
	threads, err := fs.AllThreads(pid)
	if err != nil {
		return // gone, or not ours to read: no evidence
	}
	for _, t := range threads {
		if st, err := t.Schedstat(); err == nil && st.WaitingNanoseconds <= math.MaxInt64 {
			into[t.PID] = time.Duration(st.WaitingNanoseconds)
		}
	}
}

// Verdict is what two samples say of the period between them.
type Verdict struct {
	Elapsed time.Duration
	// SelfWait is the longest run-queue wait of one of pcheck's threads
	// (many threads that wait a little each are not a starved pcheck);
	// ServerWait is the server's, summed over its threads (a stopped or
	// deadlocked server has none at all).
	SelfWait, ServerWait time.Duration
	// Pressure is the share of the period some task on the host waited
	// for a CPU (PSI); -1 when unknown. It is context only: a stopped
	// server on a loaded host sees pressure too.
	Pressure float64
}

// Judge compares two samples taken elapsed apart.
func Judge(from, to Sample, elapsed time.Duration) Verdict {
	_, self := grown(from.self, to.self)
	server, _ := grown(from.server, to.server)
	v := Verdict{Elapsed: elapsed, SelfWait: self, ServerWait: server, Pressure: -1}
	if from.psiOK && to.psiOK && elapsed > 0 {
		v.Pressure = float64(to.psi-from.psi) / float64(elapsed)
	}
	return v
}

// grown is the wait added between two readings, in all and by the thread
// that waited longest; a thread born between them brings all of its wait.
func grown(from, to map[int]time.Duration) (sum, most time.Duration) {
	for tid, d := range to {
		if old, ok := from[tid]; ok && old <= d {
			d -= old
		}
		sum += d
		most = max(most, d)
	}
	return sum, most
}

// Starved says whether the server or pcheck waited for a CPU for a large
// share of the period, and why.
func (v Verdict) Starved() (string, bool) {
	switch {
	case v.Elapsed <= 0:
		return "", false
	case v.ServerWait*Share >= v.Elapsed && v.ServerWait >= MinWait:
		return "the server's threads waited " + v.describe(v.ServerWait), true
	case v.SelfWait*Share >= v.Elapsed && v.SelfWait >= MinWait:
		return "a thread of pcheck waited " + v.describe(v.SelfWait), true
	}
	return "", false
}

func (v Verdict) describe(wait time.Duration) string {
	s := fmt.Sprintf("%v for a CPU in %v", wait.Round(time.Millisecond), v.Elapsed.Round(time.Millisecond))
	if v.Pressure >= 0 {
		s += fmt.Sprintf(" (host cpu pressure %.0f%%)", 100*v.Pressure)
	}
	return s
}
