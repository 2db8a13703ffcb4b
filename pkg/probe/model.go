// SPDX-License-Identifier: Apache-2.0

package probe

import "time"

// Model is the stall rule as a pure function of a schedule: the reference
// the Runner is checked against (model_test.go drives the real Runner
// through random schedules and compares). The rule:
//
//   - Rounds are due on the grid Up + k*interval. A round starts when it is
//     due (a late tick starts it late), or, when the round before is still
//     in flight, as soon as that one ends; grid points passed meanwhile are
//     skipped.
//   - A window opens when the service is Up (the block is starting until
//     its first success), and after that at the start of the first failed
//     round. A success closes it.
//   - Its deadline is its opening plus duration, plus the failure time
//     excused as starvation (a failed round that ran out of time while the
//     server or pcheck waited for a CPU), which is capped at duration.
//   - A round due at or before the deadline runs before the deadline is
//     judged. While starting, every such round is heard out (its timeout
//     bounds it), and the window is a stall at the deadline, or when the
//     last of them has failed. After the first success an answer must come
//     by the deadline: the window is a stall at the deadline, a probe in
//     flight then is cancelled.
//
// Its properties, checked on the Runner for thousands of schedules:
//
//  1. A server that answers the probe at Up + interval (or any earlier
//     one) is never stalled in its start, for every interval <= duration.
//  2. A server that answered, then stops answering at time h, is stalled
//     within h + duration + interval, and never before h + duration (the
//     upper bound grows by the lateness of pcheck's ticks, when they are
//     late, and by the answer time when answers take longer than the
//     interval: the rounds then come that much apart).
//  3. A probe that is due when a deadline falls runs first; ties between a
//     tick and a deadline are decided by the rule, not by which Go timer
//     fires first.
//  4. Time excused as starvation never makes 2 longer than
//     2 x duration + interval.
//  5. The wall clock plays no part: only differences of a monotonic clock
//     do.
func Model(s Schedule) Outcome {
	m := model{s: s, i: s.Interval}
	return m.run()
}

// Schedule is what the Model (and the Runner, in the property test) is
// given: the check's timing, how the server answers, and how pcheck is
// scheduled. Times are offsets from Up.
type Schedule struct {
	Interval, Duration, Timeout time.Duration
	// StartDelay: a probe that begins before it is refused, FailAfter
	// after it began (a FailAfter not shorter than Timeout is a timeout).
	StartDelay, FailAfter time.Duration
	// HangAt: a probe that begins at or after it never answers; a probe
	// that begins in [StartDelay, HangAt) answers after Latency (a timeout
	// when Latency is longer than Timeout).
	HangAt, Latency time.Duration
	// Late[k-1] is how late the tick of grid point k wakes pcheck (less
	// than Interval/2); beyond the slice, 0.
	Late []time.Duration
	// Starved[n] is the starvation evidence's verdict on round n (0 from
	// Up); beyond the slice, false.
	Starved []bool
	// Horizon: the model and the run stop there.
	Horizon time.Duration
}

// Outcome is the rounds run and the first stall, if any, before the
// horizon.
type Outcome struct {
	Rounds []ModelRound
	Stall  *ModelStall
}

// ModelRound is one round: due on the grid, begun, ended (its answer, its
// failure, its timeout, or its cut at the deadline).
type ModelRound struct {
	Due, Began, Ended time.Duration
	OK                bool
}

// ModelStall is a stall as the Runner reports it.
type ModelStall struct {
	At, FailingSince, Excused time.Duration
	Starting                  bool
}

type model struct {
	s Schedule
	i time.Duration
	// the window, as the Tracker keeps it
	open, starting, failed bool
	since, excused         time.Duration
	out                    Outcome
}

func (m *model) deadline() time.Duration { return m.since + m.s.Duration + m.excused }

func (m *model) stalled(now time.Duration) bool {
	dl := m.deadline()
	return m.open && now >= dl && (m.failed || dl > m.since)
}

func (m *model) fail(at time.Duration) {
	if !m.open {
		m.open, m.since, m.excused = true, at, 0
	}
	m.failed = true
}

func (m *model) excuse(d time.Duration) time.Duration {
	if !m.open || d <= 0 {
		return 0
	}
	d = min(d, m.s.Duration-m.excused)
	m.excused += d
	return d
}

func (m *model) late(due time.Duration) time.Duration {
	k := int(due / m.i)
	if k >= 1 && k <= len(m.s.Late) {
		return m.s.Late[k-1]
	}
	return 0
}

func (m *model) nextDue(due, began time.Duration) time.Duration {
	return max(due+m.i, (began+m.i-1)/m.i*m.i)
}

// answer is how the server answers a probe begun at b: when, and whether
// alive or timed out.
func (m *model) answer(b time.Duration) (at time.Duration, ok, timedOut bool) {
	s := m.s
	switch {
	case b < s.StartDelay:
		if s.FailAfter >= s.Timeout {
			return b + s.Timeout, false, true
		}
		return b + s.FailAfter, false, false
	case b < s.HangAt && s.Latency <= s.Timeout:
		return b + s.Latency, true, false
	}
	return b + s.Timeout, false, true
}

func (m *model) stall(at time.Duration) Outcome {
	m.out.Stall = &ModelStall{At: at, FailingSince: m.since, Excused: m.excused, Starting: m.starting}
	return m.out
}

func (m *model) run() Outcome {
	s := m.s
	m.open, m.starting = true, true
	due, began, late := time.Duration(0), time.Duration(0), time.Duration(0)
	for n := 0; began <= s.Horizon; n++ {
		starved := (n < len(s.Starved) && s.Starved[n]) || late >= m.i/starvedShare
		end, ok, timedOut := m.answer(began)
		excusedHere := time.Duration(0)
		// The cut: while starting, none; else the deadline, or the one
		// this round would open.
		cut := func() (time.Duration, bool) {
			switch {
			case m.starting:
				return 0, false
			case !m.open:
				return began + s.Duration, s.Duration > 0
			}
			return m.deadline(), true
		}
		for {
			at, has := cut()
			if !has || end <= at {
				break
			}
			// A round due by the deadline that began after it (its tick
			// was late) is judged when it begins.
			at = max(at, began)
			m.fail(began)
			if starved {
				excusedHere += m.excuse(at - due - excusedHere)
			}
			if m.stalled(at) {
				m.out.Rounds = append(m.out.Rounds, ModelRound{Due: due, Began: began, Ended: at})
				return m.stall(at)
			}
		}
		m.out.Rounds = append(m.out.Rounds, ModelRound{Due: due, Began: began, Ended: end, OK: ok})
		next := m.nextDue(due, began)
		if ok {
			m.open, m.starting, m.failed, m.since, m.excused = false, false, false, 0, 0
		} else {
			m.fail(began)
			if timedOut && starved {
				m.excuse(max(m.i, end-due) - excusedHere)
			}
			if m.stalled(end) && next > m.deadline() {
				return m.stall(end)
			}
		}
		// Between rounds: a deadline before the next round is a stall.
		if m.open && m.deadline() < next {
			if at := max(end, m.deadline()); m.stalled(at) && at <= s.Horizon {
				return m.stall(at)
			}
		}
		// The next round: at once if it is due (it waited for nothing),
		// else when its tick wakes pcheck.
		due, began, late = next, end, 0
		if end < due {
			late = m.late(due)
			began = due + late
		}
	}
	return m.out
}
