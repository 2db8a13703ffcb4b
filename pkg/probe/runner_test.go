// SPDX-License-Identifier: Apache-2.0

package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

func sampleCheck() pfile.Check {
	return pfile.Check{Kind: pfile.KindHTTP, Block: "_bi_webserv", Host: "127.0.0.1", Port: 8080, Path: "/",
		Interval: 60 * time.Second, Duration: 600 * time.Second, Timeout: 10 * time.Second}
}

func TestRunnerStallsAfterDurationAndGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFake(t, sampleCheck(), nil)

		f.set(errDown)
		first := f.tick(t, 60*time.Second)
		if first.Err == nil || first.FailingSince != 60*time.Second || first.Starting {
			t.Fatalf("first failure: %+v", first)
		}
		for at := 120 * time.Second; at < 660*time.Second; at += 60 * time.Second {
			f.tick(t, at)
			f.noStall(t)
		}
		// The deadline, 600 s after the first failure, falls on a tick:
		// the round due then runs first, and its failure is the stall.
		if r := f.tick(t, 660*time.Second); !r.Stalled || !errors.Is(r.Err, errDown) {
			t.Fatalf("the round at the deadline: %+v, want the stall", r)
		}
		s := f.lastStall(t, "the stall 600s after the first failure")
		if s.FailingSince != 60*time.Second || s.At != 660*time.Second || !errors.Is(s.Err, errDown) || s.Check.Block != "_bi_webserv" {
			t.Fatalf("stall = %+v", s)
		}

		// error 0: checking goes on, the next failure opens a new window.
		if r := f.tick(t, 720*time.Second); r.Stalled || r.FailingSince != 720*time.Second {
			t.Fatalf("the round after the stall: %+v, want a new window at 720s", r)
		}
		for at := 780 * time.Second; at < 1320*time.Second; at += 60 * time.Second {
			f.tick(t, at)
		}
		if n := len(f.stallsSoFar()); n != 1 {
			t.Fatalf("%d stalls before 1320s, want 1", n)
		}
		f.tick(t, 1320*time.Second)
		if s := f.lastStall(t, "the second stall"); s.FailingSince != 720*time.Second || s.At != 1320*time.Second {
			t.Fatalf("second stall %+v, want the window of the round at 720s", s)
		}
	})
}

func TestRunnerSuccessClearsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration = 10*time.Second, 30*time.Second
		f := startFake(t, c, nil)

		f.set(errors.New("timeout"))
		f.tick(t, 10*time.Second)
		f.tick(t, 20*time.Second)
		f.set(nil)
		if r := f.tick(t, 30*time.Second); r.Err != nil {
			t.Fatalf("success reported as %v", r.Err)
		}
		f.set(errors.New("timeout"))
		f.tick(t, 40*time.Second)
		f.tick(t, 50*time.Second)
		f.tick(t, 60*time.Second)
		f.noStall(t)
		f.tick(t, 70*time.Second)
		if s := f.lastStall(t, "the stall 30s after the failure at 40s"); s.FailingSince != 40*time.Second || s.At != 70*time.Second {
			t.Fatalf("stall %+v", s)
		}
	})
}

func TestRunnerStopsAfterFirstDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.StopAfterDetect = true
		c.Interval, c.Duration = 10*time.Second, 10*time.Second
		f := startFake(t, c, nil)

		f.set(errDown)
		f.tick(t, 10*time.Second)
		f.until(20 * time.Second)
		if s := f.lastStall(t, "the stall"); s.At != 20*time.Second {
			t.Fatalf("stall %+v, want at 20s", s)
		}
		select {
		case <-f.done:
		default:
			t.Fatal("Run goes on after the first detection (PS_EXEC error 1)")
		}
		f.until(60 * time.Second)
		if n := len(f.began); n != 3 {
			t.Fatalf("%d probes, want 3 (none after the stall)", n)
		}
	})
}

func TestRunnerExtraCheckFailureFailsTheRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration = 10*time.Second, 10*time.Second
		var listening atomic.Bool
		listening.Store(true)
		noListener := errors.New("no listener")
		var extraCalls atomic.Int32
		f := startFake(t, c, func(ctx context.Context) error {
			extraCalls.Add(1)
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("extra check run without the probe timeout")
			}
			if !listening.Load() {
				return noListener
			}
			return nil
		})
		if extraCalls.Load() != 1 {
			t.Fatal("no extra check in the first round")
		}
		if r := f.tick(t, 10*time.Second); r.Err != nil {
			t.Fatalf("probe and extra check ok, round failed: %v", r.Err)
		}
		listening.Store(false)
		if r := f.tick(t, 20*time.Second); !errors.Is(r.Err, noListener) {
			t.Fatalf("round err = %v, want the extra check's", r.Err)
		}
		f.tick(t, 30*time.Second)
		if s := f.lastStall(t, "a stall from the extra check"); !errors.Is(s.Err, noListener) || s.At != 30*time.Second {
			t.Fatalf("stall %+v", s)
		}
		// The extra check runs whatever the probe does (its report matters
		// most when the service does not answer).
		f.set(errors.New("down"))
		n := extraCalls.Load()
		f.tick(t, 40*time.Second)
		if extraCalls.Load() != n+1 {
			t.Fatal("no extra check in a round whose probe failed")
		}
	})
}

func TestNewRunnerRejectsBadInput(t *testing.T) {
	stall := func(Stall) {}
	good := sampleCheck()
	for name, tc := range map[string]struct {
		c pfile.Check
		o Options
	}{
		"no OnStall":    {good, Options{}},
		"zero interval": {func() pfile.Check { c := good; c.Interval = 0; return c }(), Options{OnStall: stall}},
		"zero timeout":  {func() pfile.Check { c := good; c.Timeout = 0; return c }(), Options{OnStall: stall}},
		"no kind":       {func() pfile.Check { c := good; c.Kind = 0; return c }(), Options{OnStall: stall}},
	} {
		if _, err := NewRunner(tc.c, tc.o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Real time, real servers: a runner against a server that accepts and never
// answers detects the stall, while a runner beside it against a healthy
// server keeps succeeding on its own schedule.
func TestRunnersRealTimeHangingAndHealthy(t *testing.T) {
	hangAddr, _ := hangingServer(t)
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	hang := checkFor(t, pfile.KindHTTP, hangAddr)
	hang.Interval, hang.Timeout, hang.Duration = 50*time.Millisecond, time.Second, 500*time.Millisecond
	hang.StopAfterDetect = true
	stalls := make(chan Stall, 1)
	hangResults := make(chan Result, 100)
	hr, err := NewRunner(hang, Options{
		OnStall:  func(s Stall) { stalls <- s },
		OnResult: func(r Result) { hangResults <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	hangDone := make(chan struct{})
	go func() { defer close(hangDone); hr.Run(ctx) }()

	ok := checkFor(t, pfile.KindHTTP, healthy.Listener.Addr().String())
	ok.Interval, ok.Timeout, ok.Duration = 20*time.Millisecond, 5*time.Second, time.Second
	okResults := make(chan Result, 1000)
	okr, err := NewRunner(ok, Options{
		OnStall:  func(s Stall) { t.Errorf("healthy check stalled: %+v", s) },
		OnResult: func(r Result) { okResults <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	go okr.Run(ctx)

	// While the first hanging probe is in flight (a second), the healthy
	// runner completes rounds.
	for i := range 3 {
		r := waitFor(t, okResults, "a healthy round")
		if r.Err != nil {
			t.Fatalf("healthy round %d: %v", i, r.Err)
		}
	}
	select {
	case r := <-hangResults:
		t.Fatalf("the hanging round ended (%v) before three healthy rounds of 20ms", r.Err)
	default:
	}

	// While starting, the rounds due by the deadline (500ms) are heard
	// out: the first to its timeout (1s), then the one due at 50ms, begun
	// when the first ended. Then the stall.
	r := waitFor(t, hangResults, "the hanging probe's round")
	if r.Stalled || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("first hanging round = %+v, want its timeout", r)
	}
	s := waitFor(t, stalls, "the stall of the hanging server")
	if took := s.At - s.FailingSince; !s.Starting || took < 2*hang.Timeout || !errors.Is(s.Err, context.DeadlineExceeded) {
		t.Fatalf("stall %+v after %v, want starting, after two timeouts of %v", s, took, hang.Timeout)
	}
	waitFor(t, hangDone, "the hanging runner to stop after its first detection")
}

// Ticks wake the runner a little late, by varying amounts: the window
// opens when its first failed round began, and the stall comes duration
// later on the dot, not a tick later.
func TestRunnerStallsOnTimeDespiteTickJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		late := func(k int) time.Duration {
			if k == 1 {
				return 300 * time.Microsecond
			}
			return 50 * time.Microsecond
		}
		f := startFakeWith(t, sampleCheck(), fakeOpts{late: late}) // first round at 0
		f.set(errDown)
		f.until(61 * time.Second) // first failure, woken late
		for k := 2; k < 11; k++ {
			f.until(time.Duration(k)*60*time.Second + time.Second)
			f.noStall(t)
		}
		f.until(661 * time.Second)
		s := f.lastStall(t, "the stall duration after the first failed round began")
		if s.FailingSince != 60*time.Second+300*time.Microsecond || s.At-s.FailingSince != 600*time.Second {
			t.Fatalf("stall %+v after %v, want 600s after the round at 60.0003s", s, s.At-s.FailingSince)
		}
	})
}

// A hang at any phase of the round grid is a stall at the first round
// that fails plus duration: never more than duration + interval after the
// hang, whatever the timeout, and a probe in flight at that moment is
// cancelled rather than waited for.
func TestRunnerHangToStallEveryPhase(t *testing.T) {
	const interval = 10 * time.Second
	phases := map[string]time.Duration{
		"just after a round":  20*time.Second + time.Millisecond,
		"mid-interval":        25 * time.Second,
		"just before a round": 30*time.Second - time.Millisecond,
		"on a round":          30 * time.Second,
	}
	for _, timeout := range []time.Duration{2 * time.Second, interval, 25 * time.Second} {
		for _, duration := range []time.Duration{20 * time.Second, 25 * time.Second} {
			for phase, hangAt := range phases {
				t.Run(fmt.Sprintf("timeout=%v/duration=%v/%s", timeout, duration, phase), func(t *testing.T) {
					c := sampleCheck()
					c.Interval, c.Duration, c.Timeout = interval, duration, timeout
					s, inFlight := hangRun(t, c, hangAt, nil)
					firstFailed := (hangAt + interval - 1) / interval * interval
					if s.FailingSince != firstFailed || s.At != firstFailed+duration {
						t.Fatalf("stall %+v, want the window of the round at %v declared at %v", s, firstFailed, firstFailed+duration)
					}
					if took := s.At - hangAt; took < duration || took > duration+interval {
						t.Fatalf("hang to stall %v, want within [%v, %v]", took, duration, duration+interval)
					}
					// A probe is in flight at the deadline, and cancelled,
					// when the deadline falls on a round (the round due
					// then runs first) or the timeout is longer than the
					// time from the last round to the deadline.
					if onRound := duration%interval == 0; (onRound || timeout > duration%interval) && !inFlight {
						t.Fatalf("no probe in flight at the deadline %v with timeout %v", s.At, timeout)
					}
					if !errors.Is(s.Err, ErrNoAnswer) && !errors.Is(s.Err, context.DeadlineExceeded) {
						t.Fatalf("stall err %v", s.Err)
					}
				})
			}
		}
	}
}

// A block is starting from Up until its first success: its failures log
// no "failing" line at info level, and its results say starting. The
// first failure after that first success is logged as failing.
func TestRunnerStartingUntilFirstSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration = 10*time.Second, 40*time.Second
		log := &recordLog{}
		f := startFakeWith(t, c, fakeOpts{logger: log, err: errDown})
		for _, at := range []time.Duration{10 * time.Second, 20 * time.Second} {
			if r := f.tick(t, at); !r.Starting || r.Err == nil || r.FailingSince != 0 {
				t.Fatalf("round at %v while the server binds: %+v, want starting since Up", at, r)
			}
		}
		f.set(nil)
		if r := f.tick(t, 30*time.Second); r.Err != nil || r.Starting {
			t.Fatalf("first success: %+v", r)
		}
		f.noStall(t)
		if n := log.count("stall check failing") + log.count("stall check recovered"); n != 0 {
			t.Fatalf("%d failing/recovered lines at info level while starting: %q", n, log.msgs)
		}
		f.set(errDown)
		if r := f.tick(t, 40*time.Second); r.Starting || r.FailingSince != 40*time.Second {
			t.Fatalf("a failure after the first success: %+v", r)
		}
		if n := log.count("stall check failing"); n != 1 {
			t.Fatalf("%d failing lines after the first success, want 1: %q", n, log.msgs)
		}
	})
}

// A server that never answers is caught at Up + duration when no round is
// due then, or when the last round due by then has failed.
func TestRunnerStartingStallsWithinDurationOfUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration, c.Timeout = 10*time.Second, 25*time.Second, 2*time.Second
		f := startFakeWith(t, c, fakeOpts{err: errDown})
		f.tick(t, 10*time.Second)
		f.tick(t, 20*time.Second)
		f.noStall(t)
		f.until(25 * time.Second)
		if s := f.lastStall(t, "the stall at Up+duration"); s.FailingSince != 0 || s.At != 25*time.Second || !s.Starting {
			t.Fatalf("stall %+v, want at 25s, starting since 0", s)
		}
	})

	// Hanging from Up: the round due at 20s, before the deadline, is heard
	// out to its timeout.
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 25*time.Second, 10*time.Second
	s, inFlight := hangRun(t, c, 0, nil)
	if s.FailingSince != 0 || s.At != 30*time.Second || !s.Starting || inFlight {
		t.Fatalf("stall %+v (in flight %v), want at 30s, when the round due at 20s timed out", s, inFlight)
	}
}

// The case (interval = duration): the first probe, at Up, comes
// before the server listens; the second, due at Up + interval, falls on
// the starting window's deadline. It runs first and its answer keeps the
// server alive: it is never stalled in its start.
func TestRunnerStartWindowTieRoundRunsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration, c.Timeout = 10*time.Second, 10*time.Second, 10*time.Second
		f := startFakeWith(t, c, fakeOpts{err: errDown})
		f.set(nil) // listening from 0.5s on
		if r := f.tick(t, 10*time.Second); r.Err != nil || r.Stalled {
			t.Fatalf("the round at the starting deadline: %+v, want a success", r)
		}
		f.until(120 * time.Second)
		f.noStall(t)
	})
}

// starvedJudge says starved while on is set.
func starvedJudge(on *atomic.Bool) func() Judge {
	return func() Judge {
		return func(time.Duration) (string, bool) { return "the server's threads waited for the CPU", on.Load() }
	}
}

// Failed rounds the evidence calls starved are not counted: each takes
// its slot (an interval) out of the count, and one line says so per
// minute. Only a round that ran out of time can be starved: a refused
// connection is an answer, counted whatever the evidence.
func TestRunnerStarvedFailuresNotCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
		var on atomic.Bool
		log := &recordLog{}
		f := startFakeWith(t, c, fakeOpts{logger: log, starved: starvedJudge(&on)})
		f.set(context.DeadlineExceeded)
		on.Store(true)
		f.tick(t, 10*time.Second)
		if r := f.tick(t, 20*time.Second); r.Excused != 20*time.Second {
			t.Fatalf("after two starved rounds: %+v, want 20s not counted", r)
		}
		on.Store(false)
		f.tick(t, 30*time.Second)
		f.tick(t, 40*time.Second)
		f.noStall(t)
		f.tick(t, 50*time.Second)
		s := f.lastStall(t, "the stall once 20s of failures were counted")
		if s.FailingSince != 10*time.Second || s.At != 50*time.Second || s.Excused != 20*time.Second {
			t.Fatalf("stall %+v, want at 50s with 20s not counted", s)
		}
		if n := log.count("stall check failure not counted: starved, not stalled"); n != 1 {
			t.Fatalf("%d not-counted lines for two rounds within a minute, want 1", n)
		}
	})
}

// A round that starts late by a large share of the interval (pcheck was
// not scheduled) is not counted either; one late because the round before
// ran long is.
func TestRunnerLateRoundNotCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
		late := func(k int) time.Duration {
			if k == 2 {
				return 3 * time.Second
			}
			return 0
		}
		f := startFakeWith(t, c, fakeOpts{late: late})
		f.set(context.DeadlineExceeded)
		if r := f.tick(t, 10*time.Second); r.Excused != 0 {
			t.Fatalf("a round on time not counted: %+v", r)
		}
		if r := f.tick(t, 23*time.Second); r.Excused != c.Interval {
			t.Fatalf("a round 3s late: %+v, want its interval not counted", r)
		}
	})
	// Timeout 25s > interval 10s (the Runner allows it; pfile does not):
	// the round due at 40s begins at 55s, when the hung one before it
	// times out. That is not pcheck starved: the stall is on time.
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 40*time.Second, 25*time.Second
	if s, _ := hangRun(t, c, 20*time.Second+time.Millisecond, nil); s.At != 70*time.Second || s.Excused != 0 {
		t.Fatalf("stall %+v, want at 30s + 40s with nothing excused", s)
	}
}

// Starvation extends the window to twice the duration at most: a starved
// server that never answers (a busy loop on a loaded node) is still
// caught, with rounds that fail at once and with probes hung in flight.
func TestRunnerStarvedCappedAtTwiceDuration(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 30*time.Second, 2*time.Second
	synctest.Test(t, func(t *testing.T) {
		f := startFakeWith(t, c, fakeOpts{starved: starvedJudge(&on)})
		f.set(context.DeadlineExceeded)
		for at := 10 * time.Second; at < 70*time.Second; at += 10 * time.Second {
			f.tick(t, at)
			f.noStall(t)
		}
		f.tick(t, 70*time.Second)
		if s := f.lastStall(t, "the stall at twice the duration"); s.FailingSince != 10*time.Second || s.At != 70*time.Second || s.Excused != c.Duration {
			t.Fatalf("stall %+v, want at 10s + 2 x 30s", s)
		}
	})

	c.Timeout = 10 * time.Second
	s, inFlight := hangRun(t, c, 15*time.Second, starvedJudge(&on))
	if s.FailingSince != 20*time.Second || s.At != 80*time.Second || !inFlight {
		t.Fatalf("stall %+v (in flight %v), want at 20s + 2 x 30s, the probe cancelled", s, inFlight)
	}
}

func TestRunnerStarvedRefusedStillCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
		var on atomic.Bool
		on.Store(true)
		f := startFakeWith(t, c, fakeOpts{starved: starvedJudge(&on)})
		f.set(errDown)
		if r := f.tick(t, 10*time.Second); r.Excused != 0 {
			t.Fatalf("a refused connection not counted: %+v", r)
		}
		f.tick(t, 20*time.Second)
		f.tick(t, 30*time.Second)
		if s := f.lastStall(t, "the stall on time"); s.At != 30*time.Second || s.Excused != 0 {
			t.Fatalf("stall %+v, want at 30s with nothing excused", s)
		}
	})
}

// A full accept queue (the listen check) is an answer too, even when the
// probe beside it timed out on a starved host.
func TestRunnerStarvedListenCheckFailureStillCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := sampleCheck()
		c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
		var on, full atomic.Bool
		on.Store(true)
		queueFull := errors.New("accept queue full")
		f := startFakeWith(t, c, fakeOpts{starved: starvedJudge(&on), extra: func(context.Context) error {
			if full.Load() {
				return queueFull
			}
			return nil
		}})
		full.Store(true)
		f.set(context.DeadlineExceeded)
		if r := f.tick(t, 10*time.Second); r.Excused != 0 || !errors.Is(r.Err, queueFull) {
			t.Fatalf("a full accept queue not counted: %+v", r)
		}
		f.tick(t, 20*time.Second)
		f.tick(t, 30*time.Second)
		if s := f.lastStall(t, "the stall on time"); s.At != 30*time.Second || s.Excused != 0 {
			t.Fatalf("stall %+v, want at 30s with nothing excused", s)
		}
	})
}
