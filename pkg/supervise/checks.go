// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/probe"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/sockdiag"
)

// ListenStatus is what the last listen check of a block saw.
type ListenStatus struct {
	// AcceptQueue and Backlog of the service's fullest listener on the
	// port; -1 when unknown.
	AcceptQueue, Backlog int
}

// CheckStatus is one stall-check block's state, for padmin and metrics.
type CheckStatus struct {
	Check pfile.Check
	OK    bool // the last round succeeded
	Ran   bool // a round has run since the service came Up
	// Starting: the service is Up and no probe has succeeded since.
	Starting bool
	// FailingSince is when the failures of the open window began (the
	// first failed round, or Up while starting), wall clock; zero when the
	// last round succeeded.
	FailingSince time.Time
	// NotCounted is the failure time of the open window not counted
	// because the server or pcheck was starved of CPU.
	NotCounted time.Duration
	Listen     ListenStatus
	// Stopped: PS_EXEC error 1 and a stall was found, or a stall kill
	// failed (guide 3.2); no more checks until padmin start.
	Stopped bool
	// LastDuration is how long the last probe round took.
	LastDuration time.Duration
	Stalls       uint64
}

// Check states, as padmin, /healthz and metrics name them.
const (
	CheckStarting = "starting" // Up, and no probe has succeeded yet
	CheckOK       = "ok"       // the last round succeeded
	CheckFailing  = "failing"  // the last round failed (see FailingSince)
	CheckStopped  = "stopped"  // error 1 found a stall, or its kill failed: no more checks
	CheckIdle     = "idle"     // the service is not Up: no checks run
)

// State names the block's state; up says whether the service is Up.
func (c CheckStatus) State(up bool) string {
	switch {
	case c.Stopped:
		return CheckStopped
	case !up:
		return CheckIdle
	case c.Starting || !c.Ran:
		return CheckStarting
	case c.OK:
		return CheckOK
	}
	return CheckFailing
}

// Checks is the state of the service's stall-check blocks.
func (s *Service) Checks() []CheckStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.checks)
}

// startChecksLocked starts a runner for each stall-check block that has not
// stopped, for the life of this Up spell. s.mu is held.
func (s *Service) startChecksLocked() {
	if s.runCtx == nil || len(s.cfg.Checks) == 0 {
		return
	}
	s.checkGen++
	ctx, cancel := context.WithCancel(s.runCtx)
	s.stopChecks = cancel
	var starved func() probe.Judge
	if s.d.Starvation != nil {
		starved = s.d.Starvation(s.treePIDs)
	}
	for i, c := range s.cfg.Checks {
		st := &s.checks[i]
		st.OK, st.Ran, st.FailingSince, st.NotCounted = false, false, time.Time{}, 0
		st.Starting = !st.Stopped
		if st.Stopped {
			continue
		}
		do, err := s.probeOf(i)
		var r *probe.Runner
		if err == nil {
			r, err = probe.NewRunner(c, probe.Options{
				OnStall:  s.onStall(i, s.checkGen),
				OnResult: s.onResult(i, s.checkGen),
				Extra:    s.listenCheck(i),
				Probe:    do,
				Starved:  starved,
				Clock:    s.d.Clock,
				Logger:   s.d.Slog.With("service", s.cfg.Name),
			})
		}
		if err != nil {
			s.d.Slog.Error("stall check not started", "service", s.cfg.Name, "check", c.Block, "error", err)
			continue
		}
		go r.Run(ctx)
	}
}

// stopChecksLocked ends the runners of this Up spell. s.mu is held.
func (s *Service) stopChecksLocked() {
	if s.stopChecks != nil {
		s.stopChecks()
		s.stopChecks = nil
	}
}

// probeOf is the block's probe, timed for status and metrics.
func (s *Service) probeOf(i int) (func(context.Context) error, error) {
	c := s.cfg.Checks[i]
	do := s.d.Probe
	if do == nil {
		p, err := probe.New(c)
		if err != nil {
			return nil, err
		}
		do = func(ctx context.Context, _ pfile.Check) error { return p.Probe(ctx) }
	}
	return func(ctx context.Context) error {
		start := time.Now()
		err := do(ctx, c)
		took := time.Since(start)
		s.mu.Lock()
		s.checks[i].LastDuration = took
		s.mu.Unlock()
		s.d.Observer.ObserveProbe(s.cfg.Name, c.Block, took, err == nil)
		return err
	}, nil
}

// listenCheck is the extra round of a listen_check block: the kernel's
// LISTEN sockets on the port must include one of the service's, with room
// in its accept queue.
func (s *Service) listenCheck(i int) func(context.Context) error {
	c := s.cfg.Checks[i]
	if !c.ListenCheck || s.d.ListenCheck == nil {
		return nil
	}
	var skipped atomic.Bool // said once per Up spell
	return func(context.Context) error {
		queue, backlog, err := s.d.ListenCheck(c.Port, s.treePIDs())
		if errors.Is(err, sockdiag.ErrSkipped) {
			// The service's network namespace could not be entered: a
			// check that cannot look passes, never kills.
			if !skipped.Swap(true) {
				s.d.Slog.Warn("listen check skipped", "service", s.cfg.Name, "check", c.Block, "why", err)
			}
			err = nil
		}
		s.mu.Lock()
		s.checks[i].Listen = ListenStatus{AcceptQueue: queue, Backlog: backlog}
		s.mu.Unlock()
		return err
	}
}

// treePIDs are the pids of the watched processes and those below them.
func (s *Service) treePIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	for _, m := range s.top {
		for _, id := range m.IDs() {
			pids = append(pids, id.PID)
		}
	}
	return pids
}

// onResult keeps the block's status; gen ties the result to its Up spell.
func (s *Service) onResult(i int, gen uint64) func(probe.Result) {
	return func(r probe.Result) {
		// FailingSince moves from the monotonic clock to the wall clock
		// for display only.
		var since time.Time
		if r.Err != nil {
			since = time.Now().Add(r.FailingSince - s.d.Clock.Now())
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if gen != s.checkGen {
			return
		}
		st := &s.checks[i]
		st.OK, st.Ran = r.Err == nil, true
		st.Starting = r.Starting && !r.Stalled
		st.FailingSince, st.NotCounted = since, r.Excused
	}
}

// onStall hands a stall to the supervisor's loop; gen ties it to the Up
// spell whose runner found it, so a late stall never kills a newer service.
func (s *Service) onStall(i int, gen uint64) func(probe.Stall) {
	return func(probe.Stall) {
		s.mu.Lock()
		s.checks[i].Stalls++
		if s.cfg.Checks[i].StopAfterDetect {
			s.checks[i].Stopped = true
		}
		s.mu.Unlock()
		s.push(input{kind: inKill, check: i, gen: gen})
	}
}

// killForStall logs the stall, kills the service's trees with SIGKILL and
// says how that went (a job: stepStallKill). The deaths come back as exit
// events and are recovered with reason stall (http, https) or socket
// (tcp).
//
// A kill that failed stops the block's stall checks first (guide 3.2, until
// padmin start), then runs retry_over_action when its PS_ACTION error is 1.
// A kill in flight runs to its own bound (SIGKILL's wait) even when ctx
// ends for a reload or pcheck's stop: a cancelled kill is not a failed one,
// and only a kill that failed, with this supervisor still running, may fail
// the node over.
func (s *Service) killForStall(ctx context.Context, in input) {
	c := s.cfg.Checks[in.check]
	s.mu.Lock()
	if s.state != Up || in.gen != s.checkGen || len(s.top) == 0 {
		s.mu.Unlock()
		return
	}
	top := slices.Clone(s.top)
	s.moveLocked(Stalled)
	s.stallReason = ReasonStall
	if c.Kind == pfile.KindTCP {
		s.stallReason = ReasonSocket
	}
	s.mu.Unlock()

	s.d.Observer.Stall(s.cfg.Name)
	if c.Kind == pfile.KindTCP {
		s.log(msg.SocketStall(s.cfg.Name, top[0].ID.PID, c.Port))
	} else {
		s.log(msg.WebStall(s.cfg.Name, top[0].ID.PID, c.Port))
	}
	s.stallCheck = in.check
	s.startJob(context.WithoutCancel(ctx), stepStallKill, proc.DefaultKillWait, func(ctx context.Context) jobResult {
		failed := false
		for _, m := range top {
			left, err := s.d.Processes.Kill(ctx, m.IDs(), proc.KillOptions{Signal: syscall.SIGKILL})
			if slices.Contains(left, m.ID) {
				failed = true
				s.log(msg.KillFailed(s.cfg.Name, m.ID.PID, err))
			} else {
				s.log(msg.Killed(s.cfg.Name, m.ID.PID))
			}
		}
		return jobResult{failed: failed}
	})
}

// stallKilled: the stall kill is over; one that failed stops the block.
func (s *Service) stallKilled(ctx context.Context, res jobResult) {
	s.rest()
	if !res.failed {
		return
	}
	c := s.cfg.Checks[s.stallCheck]
	s.mu.Lock()
	s.stallReason = ""
	s.checks[s.stallCheck].Stopped = true
	if !c.ActionError {
		s.moveLocked(Up) // still running, still watched for its death
	}
	s.mu.Unlock()
	if c.ActionError && ctx.Err() == nil {
		s.retryOver(ctx)
	}
}
