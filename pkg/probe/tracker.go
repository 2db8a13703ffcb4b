package probe

import "time"

// Tracker turns probe results into a stall: a successful probe clears the
// failure; no success for duration since the first failed probe is a stall.
// Times are readings of a monotonic clock passed in by the caller; the
// tracker never reads the wall clock, so a change of the date cannot cause
// or hide a stall. A Tracker is not safe for concurrent use.
type Tracker struct {
	duration     time.Duration
	failing      bool
	firstFailure time.Duration
}

// NewTracker makes a tracker that declares a stall after duration of
// failures.
func NewTracker(duration time.Duration) *Tracker { return &Tracker{duration: duration} }

// Observe records a probe result at now and reports whether the check is
// stalled: the probes have failed since a first failure at least duration
// ago. It stays stalled while the failures go on, until Reset.
func (t *Tracker) Observe(now time.Duration, ok bool) (stalled bool) {
	if ok {
		t.failing = false
		return false
	}
	if !t.failing {
		t.failing, t.firstFailure = true, now
	}
	return now-t.firstFailure >= t.duration
}

// FailingSince returns the time of the first failure of the current run of
// failures, and false when the last probe succeeded (or none was seen).
func (t *Tracker) FailingSince() (time.Duration, bool) { return t.firstFailure, t.failing }

// Reset forgets the failures: the next failure starts a new window.
func (t *Tracker) Reset() { t.failing = false }
