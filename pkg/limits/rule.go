// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"time"
)

// Breach is a limit exceeded on every sample for limit_for: what the
// action needs.
type Breach struct {
	Limit string
	// Value is the last sample's, Max the limit's.
	Value, Max float64
	// Held is how long the limit has been exceeded (from the first
	// sample over it to the last).
	Held time.Duration
}

// rule is the over-limit rule for one service's tree: a limit acts once
// it has been exceeded on every sample for limit_for, and once per
// breach (it acts again only after a sample under it, or a new tree).
type rule struct {
	since map[string]time.Duration // first sample of the run over the limit
	acted map[string]bool
	// master is the tree's first top-level process: a new one (the
	// service restarted) is a new tree, whose breaches start afresh.
	master int
}

func newRule() *rule {
	return &rule{since: map[string]time.Duration{}, acted: map[string]bool{}}
}

// reset forgets every run over a limit.
func (r *rule) reset() {
	clear(r.since)
	clear(r.acted)
}

// judge takes one sample (taken at now, on the monotonic clock) and
// returns the breaches that must act now. slack is how much earlier than
// limit_for a run may act: samples come a period apart, give or take the
// timer's delay, and a run of samples that spans limit_for less a
// millisecond has held for limit_for. With acts that restart, one breach
// is enough: the others are taken as acted, the tree goes.
func (r *rule) judge(l Limits, master int, u Usage, now, slack time.Duration) []Breach {
	if master != r.master {
		r.reset()
		r.master = master
	}
	var out []Breach
	for _, name := range Names {
		max := l.Max(name)
		v, known := u.Value(name)
		if max <= 0 || !known {
			continue
		}
		if v <= max {
			delete(r.since, name)
			delete(r.acted, name)
			continue
		}
		since, running := r.since[name]
		if !running {
			since = now
			r.since[name] = now
		}
		if held := now - since; held+slack >= l.For && !r.acted[name] {
			r.acted[name] = true
			out = append(out, Breach{Limit: name, Value: v, Max: max, Held: held})
		}
	}
	if len(out) > 0 && !l.LogOnly {
		for _, name := range Names {
			if _, over := r.since[name]; over {
				r.acted[name] = true
			}
		}
		out = out[:1]
	}
	return out
}
