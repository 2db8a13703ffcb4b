// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"testing"
	"time"
)

const sec = time.Second

func mem(b uint64) Usage { return Usage{MemoryBytes: b} }

// judgeAll feeds samples one second apart and returns the seconds at
// which a breach acted.
func judgeAll(l Limits, samples []Usage) (acted []int, got []Breach) {
	r := newRule()
	for i, u := range samples {
		if bs := r.judge(l, 100, u, time.Duration(i)*sec, 0); len(bs) > 0 {
			acted = append(acted, i)
			got = append(got, bs...)
		}
	}
	return acted, got
}

func TestRuleActsOnlyAfterLimitFor(t *testing.T) {
	l := Limits{MemoryBytes: 64 << 20, For: 3 * sec}
	over, under := mem(100<<20), mem(10<<20)
	// Over from second 1 on: acts at 1+3 = 4, and only once.
	acted, got := judgeAll(l, []Usage{under, over, over, over, over, over, over})
	if len(acted) != 1 || acted[0] != 4 {
		t.Fatalf("acted at %v, want [4]", acted)
	}
	if b := got[0]; b.Limit != MemoryMax || b.Value != 100<<20 || b.Max != 64<<20 || b.Held != 3*sec {
		t.Errorf("breach %+v", b)
	}
}

func TestRuleIgnoresASpike(t *testing.T) {
	l := Limits{MemoryBytes: 64 << 20, For: 3 * sec}
	over, under := mem(100<<20), mem(10<<20)
	if acted, _ := judgeAll(l, []Usage{over, over, over, under, over, over, over, under}); len(acted) != 0 {
		t.Errorf("a spike shorter than limit_for acted at %v", acted)
	}
}

func TestRuleActsAgainAfterComingBack(t *testing.T) {
	l := Limits{FDs: 10, For: sec, LogOnly: true}
	over, under := Usage{FDs: 11, HasFDs: true}, Usage{FDs: 3, HasFDs: true}
	acted, _ := judgeAll(l, []Usage{over, over, over, under, over, over})
	if len(acted) != 2 || acted[0] != 1 || acted[1] != 5 {
		t.Errorf("acted at %v, want [1 5]: once per breach", acted)
	}
}

func TestRuleNewTreeStartsAfresh(t *testing.T) {
	l := Limits{Threads: 5, For: 2 * sec}
	over := Usage{Threads: 9}
	r := newRule()
	r.judge(l, 100, over, 0, 0)
	r.judge(l, 100, over, sec, 0)
	// The service restarted (new master): its first sample over the limit
	// starts a new run.
	if bs := r.judge(l, 200, over, 2*sec, 0); len(bs) != 0 {
		t.Errorf("a new tree acted on the old one's run: %+v", bs)
	}
	if bs := r.judge(l, 200, over, 4*sec, 0); len(bs) != 1 {
		t.Errorf("the new tree's own run did not act: %+v", bs)
	}
}

// With restart, one breach acts for all (the tree goes); with log, each
// limit says its own line.
func TestRuleOneRestartForSeveralLimits(t *testing.T) {
	both := Usage{MemoryBytes: 2 << 30, Threads: 900}
	for _, tc := range []struct {
		logOnly bool
		want    int
	}{{false, 1}, {true, 2}} {
		l := Limits{MemoryBytes: 1 << 30, Threads: 500, For: 0, LogOnly: tc.logOnly}
		_, got := judgeAll(l, []Usage{both, both, both})
		if len(got) != tc.want {
			t.Errorf("logOnly %v: %d breaches %+v, want %d", tc.logOnly, len(got), got, tc.want)
		}
	}
}

// A CPU sample that is not known (a tree's first) neither starts nor ends
// a run.
func TestRuleUnknownCPU(t *testing.T) {
	l := Limits{CPUPercent: 50, For: sec}
	acted, _ := judgeAll(l, []Usage{{}, {CPUPercent: 90, HasCPU: true}, {CPUPercent: 90, HasCPU: true}})
	if len(acted) != 1 || acted[0] != 2 {
		t.Errorf("acted at %v, want [2]", acted)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		limit string
		v     float64
		want  string
	}{
		{MemoryMax, 1.21 * (1 << 30), "1.21 GiB"},
		{MemoryMax, 1 << 30, "1 GiB"},
		{MemoryMax, 64 << 20, "64 MiB"},
		{MemoryMax, 512, "512 B"},
		{MemoryMax, 1536, "1.5 KiB"},
		{CPUMax, 93.4, "93%"},
		{FDsMax, 300, "300"},
	} {
		if got := Format(tc.limit, tc.v); got != tc.want {
			t.Errorf("Format(%s, %v) = %q, want %q", tc.limit, tc.v, got, tc.want)
		}
	}
}

// A run a little short of limit_for by the timer's jitter acts (slack),
// one short by a whole period does not.
func TestRuleSlack(t *testing.T) {
	l := Limits{Threads: 5, For: 2 * sec}
	over := Usage{Threads: 9}
	r := newRule()
	r.judge(l, 100, over, 0, sec/4)
	if bs := r.judge(l, 100, over, 1500*time.Millisecond, sec/4); len(bs) != 0 {
		t.Errorf("acted a period early: %+v", bs)
	}
	if bs := r.judge(l, 100, over, 1999*time.Millisecond, sec/4); len(bs) != 1 || bs[0].Held != 1999*time.Millisecond {
		t.Errorf("did not act a millisecond short of limit_for: %+v", bs)
	}
}
