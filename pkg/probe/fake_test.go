package probe

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// fakeClock is moved by hand; its timers fire when it passes their time.
// Every timer made is announced on armed, so that a test moves the clock
// only once the runner has armed what it arms.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
	armed  chan time.Duration // the due time of each timer made
}

func newFakeClock() *fakeClock { return &fakeClock{armed: make(chan time.Duration, 1000)} }

func (c *fakeClock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to at and returns how many timers fired.
func (c *fakeClock) Set(at time.Duration) (fired int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.due > at {
			return false
		}
		t.c <- time.Time{}
		fired++
		return true
	})
	return fired
}

// nextDue is the time of the earliest pending timer.
func (c *fakeClock) nextDue() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	due := c.timers[0].due
	for _, t := range c.timers {
		due = min(due, t.due)
	}
	return due, true
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &fakeTimer{clock: c, c: make(chan time.Time, 1), due: c.now + d}
	if d <= 0 {
		t.c <- time.Time{}
	} else {
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	c.armed <- t.due
	return t
}

type fakeTimer struct {
	clock *fakeClock
	c     chan time.Time
	due   time.Duration
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	n := len(t.clock.timers)
	t.clock.timers = slices.DeleteFunc(t.clock.timers, func(x *fakeTimer) bool { return x == t })
	return len(t.clock.timers) < n
}

// fakeTicker ticks when the test says so; like time.Ticker it holds one
// tick for a busy runner and drops the rest.
type fakeTicker struct {
	c       chan time.Time
	stopped atomic.Bool
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               { t.stopped.Store(true) }

// fakeProbe answers as the test says: at once with err, or, hanging,
// only when its context ends or the test releases it.
type fakeProbe struct {
	mu       sync.Mutex
	err      error
	hang     func(now time.Duration) bool // nil: never
	clock    *fakeClock
	hung     chan time.Duration // the clock time a probe began hanging
	release  chan error
	canceled chan struct{} // a hung probe ended by its context
}

func (p *fakeProbe) set(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *fakeProbe) probe(ctx context.Context) error {
	p.mu.Lock()
	err, hang := p.err, p.hang
	p.mu.Unlock()
	now := p.clock.Now()
	if hang == nil || !hang(now) {
		return err
	}
	p.hung <- now
	select {
	case <-ctx.Done():
		p.canceled <- struct{}{}
		return ctx.Err()
	case err := <-p.release:
		return err
	}
}

type fakeRun struct {
	clock   *fakeClock
	ticker  *fakeTicker
	probe   *fakeProbe
	results chan Result
	stalls  chan Stall
	done    chan struct{}
	cancel  context.CancelFunc
}

type fakeOpts struct {
	err     error // the probe's result until the test sets another
	extra   func(context.Context) error
	hang    func(now time.Duration) bool
	starved func() Judge
	logger  *recordLog
}

func startFake(t *testing.T, c pfile.Check, extra func(context.Context) error) *fakeRun {
	return startFakeWith(t, c, fakeOpts{extra: extra})
}

// startFakeWith starts a runner at clock time 0 and waits for its first
// round (which must not hang).
func startFakeWith(t *testing.T, c pfile.Check, o fakeOpts) *fakeRun {
	t.Helper()
	clock := newFakeClock()
	f := &fakeRun{
		clock:  clock,
		ticker: &fakeTicker{c: make(chan time.Time, 1)},
		probe: &fakeProbe{clock: clock, hang: o.hang, err: o.err, hung: make(chan time.Duration, 100),
			release: make(chan error), canceled: make(chan struct{}, 100)},
		results: make(chan Result, 100),
		stalls:  make(chan Stall, 100),
		done:    make(chan struct{}),
	}
	var gotInterval time.Duration
	opts := Options{
		OnStall:   func(s Stall) { f.stalls <- s },
		OnResult:  func(r Result) { f.results <- r },
		Extra:     o.extra,
		Probe:     f.probe.probe,
		Starved:   o.starved,
		Clock:     f.clock,
		NewTicker: func(d time.Duration) Ticker { gotInterval = d; return f.ticker },
		NewTimer:  f.clock.NewTimer,
	}
	if o.logger != nil {
		opts.Logger = o.logger.logger()
	}
	r, err := NewRunner(c, opts)
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
	if c.Duration > 0 {
		waitFor(t, f.clock.armed, "the first round's deadline timer")
	}
	if o.hang != nil && o.hang(0) {
		waitFor(t, f.probe.hung, "the first round, run at once, to hang")
	} else {
		f.settle(t, waitFor(t, f.results, "the first round, run at once"))
	}
	if gotInterval != c.Interval {
		t.Fatalf("ticker period %v, want the interval %v", gotInterval, c.Interval)
	}
	return f
}

// settle waits, after a round's result, for the timer the runner arms to
// wait for the next tick: one while a window is open.
func (f *fakeRun) settle(t *testing.T, r Result) {
	t.Helper()
	if r.Err != nil && !r.Stalled {
		waitFor(t, f.clock.armed, "the deadline timer between rounds")
	}
}

// tick moves the clock to at (results of deadlines that passed are
// returned first), then runs one round, whose probe must not hang.
func (f *fakeRun) tick(t *testing.T, at time.Duration) Result {
	t.Helper()
	for range f.clock.Set(at) {
		f.settle(t, waitFor(t, f.results, "the stall at a deadline between rounds"))
	}
	select {
	case f.ticker.c <- time.Time{}:
	case <-f.done:
		t.Fatalf("tick at %v: Run has returned", at)
	case <-time.After(30 * time.Second):
		t.Fatalf("tick at %v: the runner does not wait for ticks", at)
	}
	waitFor(t, f.clock.armed, "the round's deadline timer")
	r := waitFor(t, f.results, "a round's result")
	f.settle(t, r)
	return r
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

// recordLog keeps the messages logged at info level and above.
type recordLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *recordLog) logger() *slog.Logger { return slog.New(recordHandler{l}) }

type recordHandler struct{ l *recordLog }

func (h recordHandler) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.l.mu.Lock()
	h.l.msgs = append(h.l.msgs, r.Message)
	h.l.mu.Unlock()
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func (l *recordLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

var errDown = errors.New("connection refused")

// hangRun drives a runner whose server hangs from hangAt on, with real
// ticker and timeout behaviour in fake time: a hung probe ends at its
// timeout, ticks that come while it is in flight are held (one) or
// dropped. It returns the first stall and whether a probe was in flight
// (and was cancelled) when it was declared.
func hangRun(t *testing.T, c pfile.Check, hangAt time.Duration, starved func() Judge) (Stall, bool) {
	t.Helper()
	f := startFakeWith(t, c, fakeOpts{hang: func(now time.Duration) bool { return now >= hangAt }, starved: starved})
	hungSince := time.Duration(-1)
	if hangAt <= 0 {
		hungSince = 0
	}
	nextTick, held := c.Interval, false
	// startRound follows a tick the runner takes.
	startRound := func(at time.Duration) {
		waitFor(t, f.clock.armed, "the round's deadline timer")
		if at >= hangAt {
			waitFor(t, f.probe.hung, "the probe to hang")
			hungSince = at
			return
		}
		if r := waitFor(t, f.results, "a round's result"); r.Err != nil {
			t.Fatalf("round at %v before the hang failed: %v", at, r.Err)
		}
	}
	for range 10000 {
		at, timeout := nextTick, false
		if hungSince >= 0 && hungSince+c.Timeout <= nextTick {
			at, timeout = hungSince+c.Timeout, true
		}
		if due, ok := f.clock.nextDue(); ok && due < at {
			at, timeout = due, false
		}
		for range f.clock.Set(at) {
			// A deadline: a stall, or, starved, a later deadline. After a
			// stall the runner may take a held tick and arm the next
			// round's timer at once: the stall's result came first then.
			var r Result
			select {
			case r = <-f.results:
			case <-f.clock.armed:
				select {
				case r = <-f.results:
				default:
					continue // starved: a later deadline
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("at %v a deadline fired and nothing came of it", at)
			}
			if !r.Stalled {
				t.Fatalf("at %v a deadline fired and the round ended with %+v, want a stall", at, r)
			}
			inFlight := hungSince >= 0
			if inFlight {
				waitFor(t, f.probe.canceled, "the probe in flight at the stall to be cancelled")
			}
			return waitFor(t, f.stalls, "the stall"), inFlight
		}
		if timeout {
			f.probe.release <- context.DeadlineExceeded
			hungSince = -1
			r := waitFor(t, f.results, "the hung round's result at its timeout")
			if r.Stalled {
				return waitFor(t, f.stalls, "the stall"), false
			}
			f.settle(t, r)
			if held {
				held = false
				startRound(at)
			}
			continue
		}
		if at != nextTick {
			continue // a deadline before the next tick
		}
		select {
		case f.ticker.c <- time.Time{}:
			if hungSince >= 0 {
				held = true
			} else {
				startRound(at)
			}
		default: // dropped, as time.Ticker does for a busy reader
		}
		nextTick += c.Interval
	}
	t.Fatal("no stall in 10000 steps")
	panic("unreachable")
}
