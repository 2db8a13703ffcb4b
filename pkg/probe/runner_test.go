package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

func sampleCheck() pfile.Check {
	return pfile.Check{Kind: pfile.KindHTTP, Block: "_bi_webserv", Host: "127.0.0.1", Port: 8080, Path: "/",
		Interval: 60 * time.Second, Duration: 600 * time.Second, Timeout: 10 * time.Second}
}

func TestRunnerStallsAfterDurationAndGoesOn(t *testing.T) {
	f := startFake(t, sampleCheck(), nil)

	f.probe.set(errDown)
	first := f.tick(t, 60*time.Second)
	if first.Err == nil || first.FailingSince != 60*time.Second || first.Starting {
		t.Fatalf("first failure: %+v", first)
	}
	for at := 120 * time.Second; at < 660*time.Second; at += 60 * time.Second {
		f.tick(t, at)
		f.noStall(t)
	}
	// The deadline, 600 s after the first failure, falls on a tick: the
	// stall is declared then, and the round of that tick still runs.
	if r := f.tick(t, 660*time.Second); r.Stalled || r.FailingSince != 660*time.Second {
		t.Fatalf("the round after the stall: %+v, want a new window at 660s", r)
	}
	s := waitFor(t, f.stalls, "the stall 600s after the first failure")
	if s.FailingSince != 60*time.Second || s.At != 660*time.Second || !errors.Is(s.Err, errDown) || s.Check.Block != "_bi_webserv" {
		t.Fatalf("stall = %+v", s)
	}

	// error 0: checking goes on with a new window.
	for at := 720 * time.Second; at < 1260*time.Second; at += 60 * time.Second {
		f.tick(t, at)
		f.noStall(t)
	}
	f.tick(t, 1260*time.Second)
	if s := waitFor(t, f.stalls, "the second stall"); s.FailingSince != 660*time.Second || s.At != 1260*time.Second {
		t.Fatalf("second stall %+v, want the window of the round at 660s", s)
	}
}

func TestRunnerSuccessClearsFailure(t *testing.T) {
	c := sampleCheck()
	c.Interval, c.Duration = 10*time.Second, 30*time.Second
	f := startFake(t, c, nil)

	f.probe.set(errors.New("timeout"))
	f.tick(t, 10*time.Second)
	f.tick(t, 20*time.Second)
	f.probe.set(nil)
	if r := f.tick(t, 30*time.Second); r.Err != nil {
		t.Fatalf("success reported as %v", r.Err)
	}
	f.probe.set(errors.New("timeout"))
	f.tick(t, 40*time.Second)
	f.tick(t, 50*time.Second)
	f.tick(t, 60*time.Second)
	f.noStall(t)
	f.tick(t, 70*time.Second)
	waitFor(t, f.stalls, "the stall 30s after the failure at 40s")
}

func TestRunnerStopsAfterFirstDetection(t *testing.T) {
	c := sampleCheck()
	c.StopAfterDetect = true
	c.Interval, c.Duration = 10*time.Second, 10*time.Second
	f := startFake(t, c, nil)

	f.probe.set(errDown)
	f.tick(t, 10*time.Second)
	if n := f.clock.Set(20 * time.Second); n != 1 {
		t.Fatalf("%d timers fired at the deadline, want 1", n)
	}
	waitFor(t, f.stalls, "the stall")
	waitFor(t, f.done, "Run to return after the first detection (PS_EXEC error 1)")
	if !f.ticker.stopped.Load() {
		t.Fatal("ticker not stopped")
	}
}

func TestRunnerExtraCheckFailureFailsTheRound(t *testing.T) {
	c := sampleCheck()
	c.Interval, c.Duration = 10*time.Second, 10*time.Second
	var listening atomic.Bool
	listening.Store(true)
	noListener := errors.New("no listener")
	extraCalls := make(chan struct{}, 100)
	f := startFake(t, c, func(ctx context.Context) error {
		extraCalls <- struct{}{}
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("extra check run without the probe timeout")
		}
		if !listening.Load() {
			return noListener
		}
		return nil
	})
	waitFor(t, extraCalls, "the extra check in the first round")

	if r := f.tick(t, 10*time.Second); r.Err != nil {
		t.Fatalf("probe and extra check ok, round failed: %v", r.Err)
	}
	listening.Store(false)
	if r := f.tick(t, 20*time.Second); !errors.Is(r.Err, noListener) {
		t.Fatalf("round err = %v, want the extra check's", r.Err)
	}
	f.tick(t, 30*time.Second)
	if s := waitFor(t, f.stalls, "a stall from the extra check"); !errors.Is(s.Err, noListener) || s.At != 30*time.Second {
		t.Fatalf("stall err = %v", s.Err)
	}
	// The extra check runs whatever the probe does (its report matters most
	// when the service does not answer).
	f.probe.set(errors.New("down"))
	for len(extraCalls) > 0 {
		<-extraCalls
	}
	f.tick(t, 40*time.Second)
	waitFor(t, extraCalls, "the extra check in a round whose probe failed")
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

	// The duration (500ms) runs out while the first probe is in flight: it
	// is cancelled and the stall declared then, not at its timeout (1s).
	r := waitFor(t, hangResults, "the hanging probe's round")
	if !r.Stalled || !errors.Is(r.Err, ErrNoAnswer) {
		t.Fatalf("hanging round = %+v, want a stall with ErrNoAnswer", r)
	}
	s := waitFor(t, stalls, "the stall of the hanging server")
	if took := s.At - s.FailingSince; took < hang.Duration || took >= hang.Timeout {
		t.Fatalf("stall after %v of failures, want >= %v and before the probe timeout %v", took, hang.Duration, hang.Timeout)
	}
	waitFor(t, hangDone, "the hanging runner to stop after its first detection")
}

// Ticks wake the runner a little late, by varying amounts: a stall whose
// duration is a whole number of intervals is still found on the round that
// completes it, not one interval later.
func TestRunnerStallsOnTimeDespiteTickJitter(t *testing.T) {
	f := startFake(t, sampleCheck(), nil) // first round at 0
	f.probe.set(errDown)
	f.tick(t, 60*time.Second+300*time.Microsecond) // first failure, woken late
	for k := 2; k < 11; k++ {
		f.tick(t, time.Duration(k)*60*time.Second+50*time.Microsecond)
		f.noStall(t)
	}
	// 600 s after the first failure on the grid, but 599.99975 s as read:
	// the window opened at the round's slot, the deadline is on the grid.
	f.tick(t, 660*time.Second+50*time.Microsecond)
	s := waitFor(t, f.stalls, "the stall on the round that completes the duration")
	if s.FailingSince != 60*time.Second || s.At-s.FailingSince < 600*time.Second || s.At-s.FailingSince > 600*time.Second+time.Millisecond {
		t.Fatalf("stall %+v after %v, want 600s", s, s.At-s.FailingSince)
	}
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
					// Whether a probe was in flight follows from the
					// timeout: it always is when the timeout is not
					// shorter than the time from a round to the deadline.
					if onRound := duration%interval == 0; timeout >= interval && onRound && !inFlight {
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
	c := sampleCheck()
	c.Interval, c.Duration = 10*time.Second, 40*time.Second
	log := &recordLog{}
	f := startFakeWith(t, c, fakeOpts{logger: log, err: errDown})
	for _, at := range []time.Duration{10 * time.Second, 20 * time.Second} {
		if r := f.tick(t, at); !r.Starting || r.Err == nil || r.FailingSince != 0 {
			t.Fatalf("round at %v while the server binds: %+v, want starting since Up", at, r)
		}
	}
	f.probe.set(nil)
	if r := f.tick(t, 30*time.Second); r.Err != nil || r.Starting {
		t.Fatalf("first success: %+v", r)
	}
	f.noStall(t)
	if n := log.count("stall check failing") + log.count("stall check recovered"); n != 0 {
		t.Fatalf("%d failing/recovered lines at info level while starting: %q", n, log.msgs)
	}
	f.probe.set(errDown)
	if r := f.tick(t, 40*time.Second); r.Starting || r.FailingSince != 40*time.Second {
		t.Fatalf("a failure after the first success: %+v", r)
	}
	if n := log.count("stall check failing"); n != 1 {
		t.Fatalf("%d failing lines after the first success, want 1: %q", n, log.msgs)
	}
}

// A server that never answers is still caught within duration of Up, on
// the dot, whether its probes are refused at once or hang.
func TestRunnerStartingStallsWithinDurationOfUp(t *testing.T) {
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 25*time.Second, 2*time.Second
	f := startFakeWith(t, c, fakeOpts{err: errDown})
	f.tick(t, 10*time.Second)
	f.tick(t, 20*time.Second)
	f.noStall(t)
	if n := f.clock.Set(25 * time.Second); n != 1 {
		t.Fatalf("%d timers fired at Up+duration, want 1", n)
	}
	if r := waitFor(t, f.results, "the stall"); !r.Stalled || !r.Starting {
		t.Fatalf("result %+v, want a stall while starting", r)
	}
	if s := waitFor(t, f.stalls, "the stall"); s.FailingSince != 0 || s.At != 25*time.Second || !s.Starting {
		t.Fatalf("stall %+v, want at 25s, starting since 0", s)
	}

	// Hanging from Up with a timeout longer than the duration.
	c.Timeout = 60 * time.Second
	s, inFlight := hangRun(t, c, 0, nil)
	if s.FailingSince != 0 || s.At != c.Duration || !s.Starting || !inFlight {
		t.Fatalf("stall %+v (in flight %v), want at Up+duration with the first probe cancelled", s, inFlight)
	}
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
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
	var on atomic.Bool
	log := &recordLog{}
	f := startFakeWith(t, c, fakeOpts{logger: log, starved: starvedJudge(&on)})
	f.probe.set(context.DeadlineExceeded)
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
	s := waitFor(t, f.stalls, "the stall once 20s of failures were counted")
	if s.FailingSince != 10*time.Second || s.At != 50*time.Second || s.Excused != 20*time.Second {
		t.Fatalf("stall %+v, want at 50s with 20s not counted", s)
	}
	if n := log.count("stall check failure not counted: starved, not stalled"); n != 1 {
		t.Fatalf("%d not-counted lines for two rounds within a minute, want 1", n)
	}
}

// A round that starts late by a large share of the interval (pcheck was
// not scheduled) is not counted either.
func TestRunnerLateRoundNotCounted(t *testing.T) {
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
	f := startFake(t, c, nil)
	f.probe.set(context.DeadlineExceeded)
	if r := f.tick(t, 10*time.Second); r.Excused != 0 {
		t.Fatalf("a round on time not counted: %+v", r)
	}
	if r := f.tick(t, 23*time.Second); r.Excused != c.Interval {
		t.Fatalf("a round 3s late: %+v, want its interval not counted", r)
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
	f := startFakeWith(t, c, fakeOpts{starved: starvedJudge(&on)})
	f.probe.set(context.DeadlineExceeded)
	for at := 10 * time.Second; at < 70*time.Second; at += 10 * time.Second {
		f.tick(t, at)
		f.noStall(t)
	}
	f.tick(t, 70*time.Second)
	if s := waitFor(t, f.stalls, "the stall at twice the duration"); s.FailingSince != 10*time.Second || s.At != 70*time.Second || s.Excused != c.Duration {
		t.Fatalf("stall %+v, want at 10s + 2 x 30s", s)
	}

	for _, timeout := range []time.Duration{10 * time.Second, 45 * time.Second} {
		c.Timeout = timeout
		s, inFlight := hangRun(t, c, 15*time.Second, starvedJudge(&on))
		if s.FailingSince != 20*time.Second || s.At != 80*time.Second || !inFlight {
			t.Fatalf("timeout %v: stall %+v (in flight %v), want at 20s + 2 x 30s, the probe cancelled", timeout, s, inFlight)
		}
	}
}

func TestRunnerStarvedRefusedStillCounted(t *testing.T) {
	c := sampleCheck()
	c.Interval, c.Duration, c.Timeout = 10*time.Second, 20*time.Second, 2*time.Second
	var on atomic.Bool
	on.Store(true)
	f := startFakeWith(t, c, fakeOpts{starved: starvedJudge(&on)})
	f.probe.set(errDown)
	if r := f.tick(t, 10*time.Second); r.Excused != 0 {
		t.Fatalf("a refused connection not counted: %+v", r)
	}
	f.tick(t, 20*time.Second)
	f.tick(t, 30*time.Second)
	if s := waitFor(t, f.stalls, "the stall on time"); s.At != 30*time.Second || s.Excused != 0 {
		t.Fatalf("stall %+v, want at 30s with nothing excused", s)
	}
}

// A full accept queue (the listen check) is an answer too, even when the
// probe beside it timed out on a starved host.
func TestRunnerStarvedListenCheckFailureStillCounted(t *testing.T) {
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
	f.probe.set(context.DeadlineExceeded)
	if r := f.tick(t, 10*time.Second); r.Excused != 0 || !errors.Is(r.Err, queueFull) {
		t.Fatalf("a full accept queue not counted: %+v", r)
	}
	f.tick(t, 20*time.Second)
	f.tick(t, 30*time.Second)
	if s := waitFor(t, f.stalls, "the stall on time"); s.At != 30*time.Second || s.Excused != 0 {
		t.Fatalf("stall %+v, want at 30s with nothing excused", s)
	}
}
