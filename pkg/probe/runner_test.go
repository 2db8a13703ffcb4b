package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// fakeClock is moved by hand.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) Now() time.Duration      { return time.Duration(c.now.Load()) }
func (c *fakeClock) Set(d time.Duration)     { c.now.Store(int64(d)) }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// fakeTicker ticks when the test says so.
type fakeTicker struct {
	c       chan time.Time
	stopped atomic.Bool
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               { t.stopped.Store(true) }

// scripted is a probe whose results the test sets round by round.
type scripted struct {
	mu  sync.Mutex
	err error
}

func (s *scripted) set(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *scripted) probe(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

type fakeRun struct {
	clock   *fakeClock
	ticker  *fakeTicker
	probe   *scripted
	results chan Result
	stalls  chan Stall
	done    chan struct{}
	cancel  context.CancelFunc
}

func startFake(t *testing.T, c pfile.Check, extra func(context.Context) error) *fakeRun {
	t.Helper()
	f := &fakeRun{
		clock:   &fakeClock{},
		ticker:  &fakeTicker{c: make(chan time.Time)},
		probe:   &scripted{},
		results: make(chan Result, 100),
		stalls:  make(chan Stall, 100),
		done:    make(chan struct{}),
	}
	var gotInterval time.Duration
	r, err := NewRunner(c, Options{
		OnStall:   func(s Stall) { f.stalls <- s },
		OnResult:  func(r Result) { f.results <- r },
		Extra:     extra,
		Probe:     f.probe.probe,
		Clock:     f.clock,
		NewTicker: func(d time.Duration) Ticker { gotInterval = d; return f.ticker },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		waitFor(t, f.done, "Run to return")
	})
	waitFor(t, f.results, "the first round, run at once")
	if gotInterval != c.Interval {
		t.Fatalf("ticker period %v, want the interval %v", gotInterval, c.Interval)
	}
	return f
}

// tick moves the clock to at and runs one round.
func (f *fakeRun) tick(t *testing.T, at time.Duration) Result {
	t.Helper()
	f.clock.Set(at)
	select {
	case f.ticker.c <- time.Time{}:
	case <-f.done:
		t.Fatalf("tick at %v: Run has returned", at)
	case <-time.After(30 * time.Second):
		t.Fatalf("tick at %v: the runner does not wait for ticks", at)
	}
	return waitFor(t, f.results, "a round's result")
}

// noStall fails if a stall was reported. Rounds are synchronous (tick
// waits for the result, which follows OnStall), so none can be in flight.
func (f *fakeRun) noStall(t *testing.T) {
	t.Helper()
	select {
	case s := <-f.stalls:
		t.Fatalf("stall reported at %v (failing since %v)", s.At, s.FailingSince)
	default:
	}
}

func sampleCheck() pfile.Check {
	return pfile.Check{Kind: pfile.KindHTTP, Block: "_bi_webserv", Host: "127.0.0.1", Port: 8080, Path: "/",
		Interval: 60 * time.Second, Duration: 600 * time.Second, Timeout: 10 * time.Second}
}

func TestRunnerStallsAfterDurationAndGoesOn(t *testing.T) {
	f := startFake(t, sampleCheck(), nil)
	down := errors.New("connection refused")

	f.probe.set(down)
	first := f.tick(t, 60*time.Second)
	if first.Err == nil || first.FailingSince != 60*time.Second {
		t.Fatalf("first failure: %+v", first)
	}
	for at := 120 * time.Second; at < 660*time.Second; at += 60 * time.Second {
		f.tick(t, at)
		f.noStall(t)
	}
	f.tick(t, 660*time.Second)
	s := waitFor(t, f.stalls, "the stall 600s after the first failure")
	if s.FailingSince != 60*time.Second || s.At != 660*time.Second || !errors.Is(s.Err, down) || s.Check.Block != "_bi_webserv" {
		t.Fatalf("stall = %+v", s)
	}

	// error 0: checking goes on with a new window.
	f.tick(t, 720*time.Second)
	f.noStall(t)
	for at := 780 * time.Second; at < 1320*time.Second; at += 60 * time.Second {
		f.tick(t, at)
		f.noStall(t)
	}
	f.tick(t, 1320*time.Second)
	if s := waitFor(t, f.stalls, "the second stall"); s.FailingSince != 720*time.Second {
		t.Fatalf("second stall failing since %v, want 720s (the window restarts after a stall)", s.FailingSince)
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

	f.probe.set(errors.New("down"))
	f.tick(t, 10*time.Second)
	f.tick(t, 20*time.Second)
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
	if s := waitFor(t, f.stalls, "a stall from the extra check"); !errors.Is(s.Err, noListener) {
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

	r := waitFor(t, hangResults, "the hanging probe's round")
	if !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("hanging round err = %v, want its timeout", r.Err)
	}
	s := waitFor(t, stalls, "the stall of the hanging server")
	if s.At-s.FailingSince < hang.Duration {
		t.Fatalf("stall after %v of failures, want >= %v", s.At-s.FailingSince, hang.Duration)
	}
	waitFor(t, hangDone, "the hanging runner to stop after its first detection")
}

// Ticks wake the runner a little late, by varying amounts: a stall whose
// duration is a whole number of intervals is still found on the round that
// completes it, not one interval later.
func TestRunnerStallsOnTimeDespiteTickJitter(t *testing.T) {
	f := startFake(t, sampleCheck(), nil) // first round at 0
	f.probe.set(errors.New("no answer"))
	f.tick(t, 60*time.Second+300*time.Microsecond) // first failure, woken late
	for k := 2; k < 11; k++ {
		f.tick(t, time.Duration(k)*60*time.Second+50*time.Microsecond)
		f.noStall(t)
	}
	// 600 s after the first failure on the grid, but 599.99975 s as read.
	f.tick(t, 660*time.Second+50*time.Microsecond)
	s := waitFor(t, f.stalls, "the stall on the round that completes the duration")
	if s.At-s.FailingSince != 600*time.Second {
		t.Fatalf("stall after %v, want 600s", s.At-s.FailingSince)
	}
}
