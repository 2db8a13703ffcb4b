// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
)

// The restart policy: how long to pause before the next attempt
// (retry_interval grown by retry_backoff up to retry_interval_max, the
// growth forgotten once the service stayed Up for stable_uptime), the
// re-arm after a retry over (rearm_after), and what a supervisor hands to
// its successor (a reload) or keeps across pcheck restarts.

// jitterShare is how much shorter, at most, a growing pause is made at
// random, so that services failing together do not retry in step.
const jitterShare = 0.1

// pauseAfter is the pause after the streak-th failed attempt in a row
// (1-based): retry_interval, times retry_backoff for each earlier failure,
// capped at retry_interval_max; with backoff, up to jitterShare shorter
// (jitter in [0, 1)).
func pauseAfter(cfg *pfile.Service, streak int, jitter float64) time.Duration {
	if streak <= 0 {
		return 0
	}
	if !backoffOn(cfg) {
		return cfg.RetryInterval
	}
	d := float64(cfg.RetryInterval) * math.Pow(cfg.RetryBackoff, float64(streak-1))
	d = min(d, float64(cfg.RetryIntervalMax))
	return time.Duration(d * (1 - jitterShare*jitter))
}

func backoffOn(cfg *pfile.Service) bool { return cfg.RetryBackoff > 1 }

// maxPause is the longest pause the policy can make.
func maxPause(cfg *pfile.Service) time.Duration { return max(cfg.RetryInterval, cfg.RetryIntervalMax) }

func (s *Service) after(d time.Duration) <-chan time.Time {
	if s.d.After != nil {
		return s.d.After(d)
	}
	return time.After(d)
}

func (s *Service) jitter() float64 {
	if s.d.Jitter != nil {
		return s.d.Jitter()
	}
	return rand.Float64()
}

// failedLocked counts one more failed attempt in a row and sets when the
// next may start. s.mu is held.
func (s *Service) failedLocked() {
	s.streak++
	s.nextAt = s.d.Clock.Now() + pauseAfter(s.cfg, s.streak, s.jitter())
}

// diedLocked weighs a death: a service that stayed Up for stable_uptime,
// or that pcheck did not restart, starts its backoff afresh; one that died
// sooner after a restart counts as a failed attempt, and with backoff its
// restart waits its pause (a crash loop slows down). It says whether the
// death came that soon. s.mu is held.
func (s *Service) diedLocked() (soon bool) {
	now := s.d.Clock.Now()
	if !s.fromRestart || now-s.upSince >= s.cfg.StableUptime {
		s.streak, s.nextAt = 0, 0
		return false
	}
	if backoffOn(s.cfg) {
		s.failedLocked()
	}
	return true
}

// afterRetryOver follows a retry over that leaves pcheck running
// (continue, or a reboot that is not happening): with rearm_after a re-arm
// is due; with keep (continue) the state is kept across pcheck restarts. A
// refused reboot is not kept: the reboot guard's count already ends the
// loop, and the next pcheck (the next boot) tries the service again.
func (s *Service) afterRetryOver(keep bool) {
	if keep {
		s.keep(opstate.RetryOver)
	}
	if s.cfg.RearmAfter <= 0 {
		return
	}
	s.mu.Lock()
	s.rearming, s.rearmAt = true, s.d.Clock.Now()+s.cfg.RearmAfter
	s.mu.Unlock()
	s.d.Slog.Warn("retries over: pcheck tries the service again after rearm_after, with its attempts reset (padmin start does at once)",
		"service", s.cfg.Name, "rearm_after", s.cfg.RearmAfter)
}

// rearmDue is when the re-arm is due; ok is false when none is.
func (s *Service) rearmDue() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rearmAt, s.rearming
}

// rearm tries a retried-over service again once rearm_after has passed,
// its attempts reset: a restart (reason rearm), start_on_load or not.
func (s *Service) rearm(ctx context.Context) {
	s.mu.Lock()
	if s.state != RetryOver || s.paused || !s.rearming || s.d.Clock.Now() < s.rearmAt {
		s.mu.Unlock()
		return
	}
	s.rearming = false
	s.attempts, s.streak, s.nextAt = nil, 0, 0
	s.moveLocked(Down)
	s.mu.Unlock()
	s.forget()
	s.d.Log.Log(msg.Rearmed(s.cfg.Name, s.cfg.RearmAfter))
	s.begin(ctx, beginRearm)
}

// keep records the service's Paused or RetryOver for the next pcheck.
func (s *Service) keep(state string) error {
	if s.d.Memory == nil {
		return nil
	}
	err := s.d.Memory.Keep(s.cfg.Name, opstate.Entry{State: state, Since: time.Now()})
	if err != nil {
		s.d.Slog.Error("cannot keep the service's state for a pcheck restart", "service", s.cfg.Name, "state", state, "error", err)
	}
	return err
}

// forget drops what keep recorded.
func (s *Service) forget() {
	if s.d.Memory == nil {
		return
	}
	if err := s.d.Memory.Drop(s.cfg.Name); err != nil {
		s.d.Slog.Error("cannot clear the service's kept state", "service", s.cfg.Name, "error", err)
	}
}

// History is what a supervisor hands to the one a reload puts in its
// place: its attempts within grace, its backoff, its Paused or RetryOver
// (with a re-arm due) and a recovery it was in the middle of.
type History struct {
	attempts         []time.Duration
	streak           int
	nextAt, rearmAt  time.Duration
	rearming, paused bool
	retryOver        bool
	reason           string // the recovery under way, if any
	pid              int
	scriptOwned      []proc.ID // scriptowned.go's kept masters
}

// History is the supervisor's history, to Carry over; take it once Run
// has returned.
func (s *Service) History() History {
	s.mu.Lock()
	defer s.mu.Unlock()
	return History{
		attempts: s.attempts, streak: s.streak, nextAt: s.nextAt, rearmAt: s.rearmAt,
		rearming: s.rearming, paused: s.paused || s.stopping, retryOver: s.state == RetryOver,
		reason: s.recReason, pid: s.recPID, scriptOwned: s.keptScriptOwned(),
	}
}

// Carry makes a supervisor not yet running go on from h: a reload that
// changed the service keeps its attempts, its backoff, its Paused or
// RetryOver, and finishes the recovery under way, counted.
func (s *Service) Carry(h History) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts, s.streak, s.nextAt = h.attempts, h.streak, h.nextAt
	s.recReason, s.recPID = h.reason, h.pid
	s.carryScriptOwned(h.scriptOwned)
	s.rearming, s.rearmAt = h.rearming && s.cfg.RearmAfter > 0, h.rearmAt
	switch {
	case h.paused:
		s.paused, s.state = true, Paused
	case h.retryOver:
		s.state = RetryOver
	}
}

// Restore makes a supervisor not yet running begin as the previous pcheck
// left it (opstate): Paused, or RetryOver with its re-arm counted from when
// the retries were over.
func (s *Service) Restore(e opstate.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.State {
	case opstate.Paused:
		s.paused, s.state = true, Paused
	case opstate.RetryOver:
		s.state = RetryOver
		if s.cfg.RearmAfter > 0 {
			// A date in the future (the clock set back) waits the whole
			// rearm_after, never longer.
			left := min(max(s.cfg.RearmAfter-time.Since(e.Since), 0), s.cfg.RearmAfter)
			s.rearming, s.rearmAt = true, s.d.Clock.Now()+left
		}
	}
}
