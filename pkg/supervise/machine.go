// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"fmt"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/opstate"
)

// Run supervises until ctx ends. Watched processes are left running.
func (s *Service) Run(ctx context.Context) {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	s.restoreScriptOwned()
	s.awaitRestartInFlight(ctx)
	s.begin(ctx, beginLoad)
	// A service Down and not being recovered (start_on_load no) or in
	// RetryOver is looked for now and then: it is adopted once someone
	// starts it.
	// Only such a service ticks: an Up one sleeps until an event.
	var idle *time.Ticker
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	defer s.refusePending()
	var rearmC <-chan time.Time
	var rearmFor time.Duration
	for {
		var idleC <-chan time.Time
		switch looks := s.idleLooks(); {
		case looks && idle == nil:
			idle = time.NewTicker(s.d.IdleScanInterval)
			idleC = idle.C
		case looks:
			idleC = idle.C
		case idle != nil:
			idle.Stop()
			idle = nil
		}
		if at, ok := s.rearmDue(); !ok {
			rearmC = nil
		} else if rearmC == nil || at != rearmFor {
			rearmFor, rearmC = at, s.after(at-s.d.Clock.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-rearmC:
			rearmC = nil
			s.setBusy(true)
			s.rearm(ctx)
			s.setBusy(false)
		case <-s.wake:
		case <-s.appeared:
			s.lookForUnstarted(lookNow)
		case <-idleC:
			s.lookForUnstarted(lookIdle)
		case <-s.resync:
			// Lost events: a service that came back unseen is found, and
			// the trees of a running one are scanned anew.
			s.lookForUnstarted(lookFull)
			if s.State() == Up {
				s.retrack()
			}
		}
		for in, ok := s.next(); ok && ctx.Err() == nil; in, ok = s.next() {
			s.setBusy(true)
			s.handle(ctx, in)
			s.setBusy(false)
		}
	}
}

// How begin came to be called.
type beginHow int

const (
	beginLoad  beginHow = iota + 1 // Run starts; padmin start
	beginRearm                     // rearm_after passed
)

// begin adopts a running service, or starts it: pcheck's first start of it
// (start_on_load), which uses up no attempt; the recovery a reload
// interrupted, counted; or the restart of a re-arm, counted. A service
// left RetryOver (restored, carried) waits for its re-arm.
func (s *Service) begin(ctx context.Context, how beginHow) {
	s.mu.Lock()
	waits := s.paused || s.state == RetryOver
	carried, carriedPID := s.recReason, s.recPID
	s.mu.Unlock()
	if waits {
		return
	}
	found, err := s.d.Processes.Find()
	for err != nil {
		// Not knowing is not "not running": starting a running service
		// again could break it. Look again.
		s.d.Slog.Error("cannot scan for the service's processes; looking again", "service", s.cfg.Name, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.d.IdleScanInterval):
		}
		if s.Paused() {
			return
		}
		found, err = s.d.Processes.Find()
	}
	found = s.dropOrphans(ctx, found)
	if len(found) >= s.cfg.MinCount {
		s.watch(found)
		s.retrack()
		s.log(msg.Adopted(s.cfg.Name, pidsOf(found)))
		return
	}
	switch {
	case how == beginRearm:
		s.killTrees(ctx, found)
		s.recover(ctx, ReasonRearm, 0, false)
	case carried != "":
		s.killTrees(ctx, found)
		s.recover(ctx, carried, carriedPID, false)
	case s.cfg.StartOnLoad:
		s.killTrees(ctx, found)
		s.recover(ctx, ReasonStart, 0, true)
	}
	// start_on_load no: stays Down until its processes appear.
}

func (s *Service) handle(ctx context.Context, in input) {
	switch in.kind {
	case inExit:
		if st := s.State(); (st != Up && st != Stalled) || !s.owns(in.ev.ID) {
			return // an old identity's late news
		}
		reason, req := s.takeStallReason()
		ending := endingOf(in.ev, reason)
		s.log(msg.Down(s.cfg.Name, in.ev.ID.PID))
		s.log(msg.Ended(s.cfg.Name, in.ev.ID.PID, ending))
		s.recordDeath(ending, req)
		s.mu.Lock()
		uncounted := s.weighDeathLocked(req)
		s.moveLocked(Down)
		s.mu.Unlock()
		s.afterDeath(ctx, in.ev.ID)
		s.recover(ctx, reason, in.ev.ID.PID, uncounted)
	case inStop:
		s.unwatchAll()
		s.mu.Lock()
		s.moveLocked(Paused)
		s.rearming, s.recReason = false, ""
		s.mu.Unlock()
		if err := s.keep(opstate.Paused); err != nil {
			in.done <- fmt.Errorf("stopped, but a pcheck restart would not know: %w", err)
			return
		}
		in.done <- nil
	case inStart:
		s.forget()
		s.mu.Lock()
		s.paused = false
		s.attempts, s.streak, s.nextAt, s.rearming, s.recReason = nil, 0, 0, false, ""
		for i := range s.checks {
			s.checks[i].Stopped = false
		}
		resume := s.state == Paused || s.state == RetryOver
		if resume {
			s.moveLocked(Down)
		}
		if s.state == Up { // checks stopped by error 1 run again
			s.stopChecksLocked()
			s.startChecksLocked()
		}
		s.mu.Unlock()
		if resume {
			s.begin(ctx, beginLoad)
		}
	case inKill:
		s.killForStall(ctx, in)
	case inRestart:
		s.killForRestart(ctx, in)
	}
}

// takeStallReason is the reason for the recovery of a death: the stall
// check's or the restart request's if it killed the service (with the
// request), else down.
func (s *Service) takeStallReason() (string, *RestartRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, req := s.stallReason, s.requested
	s.stallReason, s.requested = "", nil
	if r == "" {
		return ReasonDown, nil
	}
	return r, req
}

// weighDeathLocked weighs a death for the restart policy and says whether
// its first restart attempt is not counted: a padmin restart never is; a
// broken limit is, as a death is, when it comes within stable_uptime of a
// restart by pcheck. s.mu is held.
func (s *Service) weighDeathLocked(req *RestartRequest) (uncounted bool) {
	switch {
	case req == nil:
		s.diedLocked()
		return false
	case req.Reason == ReasonLimit:
		return !s.diedLocked()
	}
	return true
}

func (s *Service) setState(to State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moveLocked(to)
}

// moveLocked changes the state along the transition table; a move it does
// not allow is a bug, logged and not made. s.mu is held.
func (s *Service) moveLocked(to State) {
	if s.state == to {
		return
	}
	if !canMove(s.state, to) {
		s.d.Slog.Error("refused a state transition that is not allowed", "service", s.cfg.Name, "from", s.state, "to", to)
		return
	}
	from := s.state
	s.state = to
	switch {
	case to == Up:
		s.startChecksLocked()
	case from == Up:
		s.stopChecksLocked()
	}
}
