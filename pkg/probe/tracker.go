// SPDX-License-Identifier: Apache-2.0

package probe

import "time"

// Tracker turns probe results into a stall. A window opens at the start of
// the first failed round (or when the service comes Up: the block is
// starting until its first success); a success closes it. The window is a
// stall once it has lasted duration, plus the failure time excused as
// starvation (see Excuse), but never more than twice duration. Times are
// readings of a monotonic clock passed in by the caller; the tracker never
// reads the wall clock, so a change of the date cannot cause or hide a
// stall. A Tracker is not safe for concurrent use.
type Tracker struct {
	duration time.Duration
	open     bool // a window is open: starting, or failing
	starting bool // no probe has succeeded since Start
	failed   bool // a round of this window has failed
	since    time.Duration
	excused  time.Duration
}

// NewTracker makes a tracker that declares a stall after duration of
// failures.
func NewTracker(duration time.Duration) *Tracker { return &Tracker{duration: duration} }

// Start opens the starting window at at, the time the service came Up: if
// nothing succeeds within duration of it, that is a stall.
func (t *Tracker) Start(at time.Duration) {
	*t = Tracker{duration: t.duration, open: true, starting: true, since: at}
}

// Fail records a failed round that started at at.
func (t *Tracker) Fail(at time.Duration) {
	if !t.open {
		t.open, t.since, t.excused = true, at, 0
	}
	t.failed = true
}

// Succeed records a successful round: the window closes.
func (t *Tracker) Succeed() { *t = Tracker{duration: t.duration} }

// Excuse takes d of the open window out of the count (the server was
// starved, not stalled) and returns how much was taken: the window is
// never longer than twice duration.
func (t *Tracker) Excuse(d time.Duration) time.Duration {
	if !t.open || d <= 0 {
		return 0
	}
	d = min(d, t.duration-t.excused)
	t.excused += d
	return d
}

// Deadline is the time the open window becomes a stall; false when no
// window is open.
func (t *Tracker) Deadline() (time.Duration, bool) {
	return t.since + t.duration + t.excused, t.open
}

// Stalled reports whether the window is a stall at now. A zero duration is
// a stall at the first failure, not before it.
func (t *Tracker) Stalled(now time.Duration) bool {
	dl, open := t.Deadline()
	return open && now >= dl && (t.failed || dl > t.since)
}

// Observe records a round that started at now and reports whether the
// check is stalled then.
func (t *Tracker) Observe(now time.Duration, ok bool) (stalled bool) {
	if ok {
		t.Succeed()
		return false
	}
	t.Fail(now)
	return t.Stalled(now)
}

// FailingSince returns the start of the open window, and false when no
// window is open (the last probe succeeded, or none ran).
func (t *Tracker) FailingSince() (time.Duration, bool) { return t.since, t.open }

// Starting reports whether no probe has succeeded since Start.
func (t *Tracker) Starting() bool { return t.starting }

// Excused is the failure time of the open window not counted.
func (t *Tracker) Excused() time.Duration { return t.excused }

// Reset forgets the window after a stall: the next failure opens a new one.
func (t *Tracker) Reset() { *t = Tracker{duration: t.duration} }
