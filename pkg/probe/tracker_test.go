// SPDX-License-Identifier: Apache-2.0

package probe

import (
	"testing"
	"time"
)

func TestTrackerStallsAfterDurationSinceFirstFailure(t *testing.T) {
	tr := NewTracker(600 * time.Second)
	// The guide's default: a probe every 60 s, a stall after 600 s.
	for i := range 10 {
		now := time.Duration(i) * 60 * time.Second
		if tr.Observe(now, false) {
			t.Fatalf("stalled at %v, before 600s of failures", now)
		}
	}
	if since, failing := tr.FailingSince(); !failing || since != 0 {
		t.Fatalf("FailingSince = %v, %v; want 0, true", since, failing)
	}
	if !tr.Observe(600*time.Second, false) {
		t.Fatal("not stalled after 600s of failures")
	}
	if !tr.Observe(660*time.Second, false) {
		t.Fatal("a stall must last while the failures go on")
	}
}

func TestTrackerSuccessClearsFailure(t *testing.T) {
	tr := NewTracker(100 * time.Second)
	tr.Observe(0, false)
	tr.Observe(90*time.Second, true)
	if _, failing := tr.FailingSince(); failing {
		t.Fatal("still failing after a success")
	}
	// The window restarts at the next failure, not at the first one.
	if tr.Observe(150*time.Second, false) {
		t.Fatal("stalled: the success at 90s did not clear the failure at 0s")
	}
	if tr.Observe(249*time.Second, false) {
		t.Fatal("stalled before 100s since the failure at 150s")
	}
	if !tr.Observe(250*time.Second, false) {
		t.Fatal("not stalled 100s after the failure at 150s")
	}
}

func TestTrackerReset(t *testing.T) {
	tr := NewTracker(10 * time.Second)
	tr.Observe(0, false)
	if !tr.Observe(10*time.Second, false) {
		t.Fatal("not stalled")
	}
	tr.Reset()
	if tr.Observe(11*time.Second, false) {
		t.Fatal("stalled right after Reset: the window did not restart")
	}
	if !tr.Observe(21*time.Second, false) {
		t.Fatal("not stalled 10s after the failure following Reset")
	}
}

// The guide warns that its product misjudges stalls when the date changes.
// The tracker is fed monotonic readings only: here the wall clock jumps a
// day forward then an hour back between probes while the monotonic clock
// advances a second per probe, and the stall comes exactly after duration
// of monotonic time, as if the date had never changed.
func TestTrackerIgnoresWallClockJumps(t *testing.T) {
	const duration = 5 * time.Second
	wallStart := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func(probe int) (mono time.Duration, wall time.Time) {
		mono = time.Duration(probe) * time.Second
		wall = wallStart.Add(mono)
		switch {
		case probe >= 3:
			wall = wall.Add(24*time.Hour - time.Hour) // `date -s` forward a day, then back an hour
		case probe >= 2:
			wall = wall.Add(24 * time.Hour)
		}
		return mono, wall
	}

	tr := NewTracker(duration)
	var firstWall time.Time
	for probe := 0; probe <= 5; probe++ {
		mono, wall := clock(probe)
		if probe == 0 {
			firstWall = wall
		}
		stalled := tr.Observe(mono, false)
		wallSays := wall.Sub(firstWall) >= duration
		if want := mono >= duration; stalled != want {
			t.Fatalf("probe %d (monotonic %v, wall +%v): stalled = %v, want %v", probe, mono, wall.Sub(firstWall), stalled, want)
		}
		if probe == 2 && !wallSays {
			t.Fatal("test is wrong: a wall-clock tracker would not have been fooled at probe 2")
		}
	}
}
