// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
)

// Status: what padmin, /healthz and the watchdog see of a service, and
// what is due next.

// Status is a service's state as padmin shows it.
type Status struct {
	Name     string
	State    State
	PIDs     []int
	UpSince  time.Duration // on the Clock; meaningful while Up
	Uptime   time.Duration
	Restarts int // restart attempts within grace
	// AttemptsLeft are the restart attempts retry_count still allows
	// within grace.
	AttemptsLeft int
	// Next is what is due next: NextAttempt (a pause between attempts is
	// under way), NextRearm (a retry over waits for rearm_after) or "";
	// NextIn is how long until then.
	Next   string
	NextIn time.Duration
	// Step is the step of the work under way ("killing leftovers",
	// "pausing 5s", "script running", "awaiting processes", ...), "" at
	// rest.
	Step string
	// LastEvent is the last catalogue message logged for the service.
	LastEvent   string
	LastEventAt time.Time
	// LastDeath is why a top-level process last died (nil: none yet).
	LastDeath   *msg.Ending
	LastDeathAt time.Time
}

// What Status.Next says is due.
const (
	NextAttempt = "attempt"
	NextRearm   = "rearm"
)

// Status is a snapshot for padmin.
func (s *Service) Status() Status {
	st := s.Kept()
	if st.State == Paused {
		// Nothing is watched while paused, but the processes still run:
		// show what runs now (a failed scan shows none rather than guess).
		if found, err := s.d.Processes.Find(); err == nil {
			st.PIDs = pidsOf(found)
		}
	}
	return st
}

// Kept is Status from what the supervisor keeps, never reading /proc (a
// paused service shows no pids): what /healthz answers from, however
// often it is asked.
func (s *Service) Kept() Status {
	s.mu.Lock()
	now := s.d.Clock.Now()
	recent := len(s.recentAttempts(now))
	st := Status{
		Name: s.cfg.Name, State: s.state, Restarts: recent, AttemptsLeft: max(s.cfg.RetryCount-recent, 0),
		LastEvent: s.last, LastEventAt: s.lastAt, LastDeath: s.lastDeath, LastDeathAt: s.lastDeathAt,
	}
	switch {
	case s.rearming && s.state == RetryOver:
		st.Next, st.NextIn = NextRearm, max(s.rearmAt-now, 0)
	case s.rec != nil && s.nextAt > now && s.state == Down:
		st.Next, st.NextIn = NextAttempt, s.nextAt-now
	}
	st.Step = steps[s.step].name
	if s.step == stepPausing {
		st.Step += " " + max(s.nextAt-now, 0).Round(time.Millisecond).String()
	}
	for _, m := range s.top {
		st.PIDs = append(st.PIDs, m.ID.PID)
	}
	if s.state == Up {
		st.UpSince, st.Uptime = s.upSince, now-s.upSince
	}
	s.mu.Unlock()
	return st
}

// AtRest says the loop has nothing under way: no recovery, no step of
// one, no job, no input being handled (a first look waiting for its read
// of /proc is busy at rest).
func (s *Service) AtRest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step == stepRest && s.job == nil && s.rec == nil && !s.busy
}

// State is the service's current state.
func (s *Service) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Service) setBusy(b bool) {
	s.mu.Lock()
	s.busy, s.progressAt = b, s.d.Clock.Now()
	s.mu.Unlock()
}

// progress says the loop moved on.
func (s *Service) progress() {
	s.mu.Lock()
	s.progressAt = s.d.Clock.Now()
	s.mu.Unlock()
}

// stepSlack is added to a step's own bound (and to the loop's) before the
// supervisor counts as stuck.
const stepSlack = time.Minute

// Answering says whether the supervisor answers, as its loop tells: the
// loop is waiting for its next input, or handling one for no longer than
// the longest thing it may do itself (a scan, the wait for a previous
// pcheck's script, a reboot: the service's bounds, with a minute to
// spare), and the step under way has not outlasted its own bound (a
// restart script's restart_timeout, a kill's, the pause it set). A stuck
// supervisor starves systemd's watchdog.
func (s *Service) Answering() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.d.Clock.Now()
	if s.stepBound > 0 && now-s.stepAt > s.stepBound+stepSlack {
		return false
	}
	if !s.busy {
		return true
	}
	bound := max(s.cfg.RestartTimeout, maxPause(s.cfg), 2*s.cfg.KillTimeout+s.d.ExitWait) + stepSlack
	return now-s.progressAt <= bound
}
