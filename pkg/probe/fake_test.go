// SPDX-License-Identifier: Apache-2.0

package probe

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// The runner tests run the real Runner in a synctest bubble, whose clock
// (the time package's, there) is fake: it moves only once every goroutine
// is blocked, so each instant is settled before the test looks, and a run
// of minutes takes no real time. See sim_test.go.

// fakeRun is a runner under test and what it reported.
type fakeRun struct {
	t0      time.Time
	mu      sync.Mutex
	err     error                        // the probe's answer
	hang    func(now time.Duration) bool // the probe hangs (until its context ends)
	began   []time.Duration
	cancels int // hung probes ended by a cancellation (a stall's cut)
	results []Result
	stalls  []Stall
	done    chan struct{}
}

type fakeOpts struct {
	err     error // the probe's result until the test sets another
	extra   func(context.Context) error
	hang    func(now time.Duration) bool
	starved func() Judge
	logger  *recordLog
	late    func(k int) time.Duration // how late the tick of grid point k comes
}

func startFake(t *testing.T, c pfile.Check, extra func(context.Context) error) *fakeRun {
	return startFakeWith(t, c, fakeOpts{extra: extra})
}

// startFakeWith starts a runner at clock time 0 (inside a bubble) and lets
// its first round run.
func startFakeWith(t *testing.T, c pfile.Check, o fakeOpts) *fakeRun {
	t.Helper()
	f := &fakeRun{t0: time.Now(), err: o.err, hang: o.hang, done: make(chan struct{})}
	opts := Options{
		OnStall: func(s Stall) {
			f.mu.Lock()
			f.stalls = append(f.stalls, s)
			f.mu.Unlock()
		},
		OnResult: func(r Result) {
			f.mu.Lock()
			f.results = append(f.results, r)
			f.mu.Unlock()
		},
		Extra:   o.extra,
		Probe:   f.probe,
		Starved: o.starved,
		Clock:   f,
	}
	if o.late != nil {
		opts.NewTicker = func(d time.Duration) Ticker { return newLateTicker(d, o.late) }
	}
	if o.logger != nil {
		opts.Logger = o.logger.logger()
	}
	r, err := NewRunner(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(f.done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	synctest.Wait()
	return f
}

// Now is the runner's clock: time since the run began.
func (f *fakeRun) Now() time.Duration { return time.Since(f.t0) }

func (f *fakeRun) probe(ctx context.Context) error {
	now := f.Now()
	f.mu.Lock()
	err, hang := f.err, f.hang
	f.began = append(f.began, now)
	f.mu.Unlock()
	if hang == nil || !hang(now) {
		return err
	}
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		f.mu.Lock()
		f.cancels++
		f.mu.Unlock()
	}
	return ctx.Err()
}

func (f *fakeRun) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// until lets the clock run to at and everything due then settle.
func (f *fakeRun) until(at time.Duration) {
	if d := at - f.Now(); d > 0 {
		time.Sleep(d)
	}
	synctest.Wait()
}

// tick runs the clock to at, where a round is due, and returns that
// round's result (the last one reported).
func (f *fakeRun) tick(t *testing.T, at time.Duration) Result {
	t.Helper()
	n := f.nResults()
	f.until(at)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.results) == n {
		t.Fatalf("no round ended by %v", at)
	}
	return f.results[len(f.results)-1]
}

func (f *fakeRun) nResults() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.results)
}

// stallsSoFar returns the stalls reported.
func (f *fakeRun) stallsSoFar() []Stall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Stall(nil), f.stalls...)
}

// lastStall fails unless a stall was reported, and returns the last.
func (f *fakeRun) lastStall(t *testing.T, what string) Stall {
	t.Helper()
	s := f.stallsSoFar()
	if len(s) == 0 {
		t.Fatalf("no stall: want %s", what)
	}
	return s[len(s)-1]
}

// noStall fails if a stall was reported.
func (f *fakeRun) noStall(t *testing.T) {
	t.Helper()
	if s := f.stallsSoFar(); len(s) > 0 {
		t.Fatalf("stall reported at %v (failing since %v)", s[0].At, s[0].FailingSince)
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

// hangRun runs check c (stopping after its first detection) against a
// server that answers until hangAt and hangs from then on, each hung probe
// ending at its timeout or when cancelled. It returns the first stall and
// whether a probe was in flight (and was cancelled) when it was declared.
func hangRun(t *testing.T, c pfile.Check, hangAt time.Duration, starved func() Judge) (Stall, bool) {
	t.Helper()
	var s Stall
	var inFlight bool
	synctest.Test(t, func(t *testing.T) {
		c.StopAfterDetect = true
		f := startFakeWith(t, c, fakeOpts{hang: func(now time.Duration) bool { return now >= hangAt }, starved: starved})
		select {
		case <-f.done:
		case <-time.After(hangAt + 10*(c.Duration+c.Interval+c.Timeout)):
			t.Fatal("no stall of the hung server")
		}
		s = f.lastStall(t, "a stall of the hung server")
		inFlight = f.cancels > 0
	})
	return s, inFlight
}
