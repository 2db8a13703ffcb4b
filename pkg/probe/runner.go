package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// ErrNoAnswer is a round's error when the stall duration ran out while its
// probe was in flight: the probe is cancelled, it could only have succeeded
// after the duration.
var ErrNoAnswer = errors.New("no answer within the stall duration")

// Clock reads a monotonic clock (supervise.MonotonicClock fits).
type Clock interface {
	Now() time.Duration
}

// Ticker delivers the runner's periodic ticks; time.Ticker's behaviour
// (ticks dropped while the runner is busy) is what it expects.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Timer is a one-shot timer on the same clock (time.Timer's behaviour).
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Judge says whether the period since it was opened (elapsed long) was one
// of starvation: the server, or pcheck, waited for the CPU for a large
// share of it. why names the evidence.
type Judge func(elapsed time.Duration) (why string, starved bool)

// Stall is a detected stall, handed to Options.OnStall.
type Stall struct {
	Check pfile.Check
	// FailingSince is the clock time the window opened (the start of the
	// first failed round, or the service's Up while it was starting); At
	// the time the stall was declared.
	FailingSince, At time.Duration
	// Excused is the failure time not counted (starvation).
	Excused time.Duration
	// Starting: no probe had succeeded since the service came Up.
	Starting bool
	// Err is the last round's error.
	Err error
}

// Result is one round of a check (the probe and the extra check), or a
// stall declared between rounds, handed to Options.OnResult after OnStall.
type Result struct {
	At time.Duration
	// Err is nil when the round succeeded.
	Err error
	// FailingSince is meaningful when Err is not nil: the clock time the
	// current window opened.
	FailingSince time.Duration
	// Starting: no probe has succeeded since the service came Up.
	Starting bool
	// Excused is the failure time of the window not counted (starvation).
	Excused time.Duration
	// Stalled says this round made a stall (OnStall has been called).
	Stalled bool
}

// Options are a runner's collaborators.
type Options struct {
	// OnStall is called, on the runner's goroutine, for each stall. Required.
	OnStall func(Stall)
	// OnResult, if set, is called after every round (status, metrics).
	OnResult func(Result)
	// Extra, if set, runs in every round before the probe, under the same
	// deadline; its failure fails the round (the daemon plugs the sock_diag
	// listen check in here).
	Extra func(ctx context.Context) error
	// Probe replaces the probe built from the check (tests).
	Probe func(ctx context.Context) error
	// Starved, if set, opens a period at each round's start; a failed round
	// its Judge finds starved is not counted towards the duration.
	Starved func() Judge
	// Clock defaults to a monotonic clock started with the runner.
	Clock Clock
	// NewTicker defaults to time.NewTicker.
	NewTicker func(time.Duration) Ticker
	// NewTimer defaults to time.NewTimer.
	NewTimer func(time.Duration) Timer
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// notCountedEvery bounds the "failure not counted" lines of a runner.
const notCountedEvery = time.Minute

// Runner runs one _bi_ block's check on its own schedule.
type Runner struct {
	check pfile.Check
	o     Options
	tr    *Tracker

	lastErr       error         // the last round's error
	notCountedAt  time.Duration // when the last "not counted" line was logged
	notCountedYet bool          // one has been logged
	notCountedN   int           // rounds not counted since that line
}

// NewRunner prepares the runner of check.
func NewRunner(check pfile.Check, o Options) (*Runner, error) {
	if check.Interval <= 0 || check.Timeout <= 0 || check.Duration < 0 {
		return nil, fmt.Errorf("probe: %s: interval %v and timeout %v must be positive, duration %v not negative",
			check.Block, check.Interval, check.Timeout, check.Duration)
	}
	if o.OnStall == nil {
		return nil, errors.New("probe: Options.OnStall is required")
	}
	if o.Probe == nil {
		p, err := New(check)
		if err != nil {
			return nil, err
		}
		o.Probe = p.Probe
	}
	if o.Clock == nil {
		o.Clock = monotonic{time.Now()}
	}
	if o.NewTicker == nil {
		o.NewTicker = func(d time.Duration) Ticker { return timeTicker{time.NewTicker(d)} }
	}
	if o.NewTimer == nil {
		o.NewTimer = func(d time.Duration) Timer { return timeTimer{time.NewTimer(d)} }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("check", check.Block, "kind", check.Kind, "host", check.Host, "port", check.Port)
	return &Runner{check: check, o: o, tr: NewTracker(check.Duration)}, nil
}

// Run probes at once, then every interval, until ctx ends. The block is
// starting until its first success. The moment the window's deadline
// passes (duration since it opened, plus the failure time excused as
// starvation) the check is stalled, whether a probe is in flight (it is
// cancelled) or not. Run calls OnStall, then returns if the check stops
// after its first detection (PS_EXEC error 1), else goes on with no window
// open.
func (r *Runner) Run(ctx context.Context) {
	t := r.o.NewTicker(r.check.Interval)
	defer t.Stop()
	start := r.o.Clock.Now()
	r.tr.Start(start)
	expected := start
	for {
		now := r.o.Clock.Now()
		slot := r.slot(start, now)
		// The tick and the deadline came together and the tick won: the
		// deadline is not missed, and this slot's round still runs.
		if r.tr.Stalled(slot) && r.report(r.stall(slot, r.lastErr)) {
			return
		}
		res := r.round(ctx, slot, now-expected)
		if ctx.Err() != nil {
			return
		}
		if r.report(res) {
			return
		}
		expected = slot + r.check.Interval
		if !r.wait(ctx, t) {
			return
		}
	}
}

// wait waits for the next tick; a window's deadline that passes meanwhile
// is a stall at once. It returns false when Run is to return.
func (r *Runner) wait(ctx context.Context, t Ticker) bool {
	for {
		timer, c := r.deadlineTimer(r.o.Clock.Now(), false)
		select {
		case <-ctx.Done():
			stop(timer)
			return false
		case <-t.C():
			stop(timer)
			return true
		case <-c:
			now := r.o.Clock.Now()
			if !r.tr.Stalled(now) {
				continue
			}
			if r.report(r.stall(now, r.lastErr)) {
				return false
			}
		}
	}
}

// deadlineTimer arms a timer for the open window's deadline or, when
// tentative (a round in flight with no window open), for the deadline
// this round would have if it failed. A deadline not after from is not
// armed: a round that opens a window of zero duration is judged when it
// ends.
func (r *Runner) deadlineTimer(from time.Duration, tentative bool) (Timer, <-chan time.Time) {
	dl, open := r.tr.Deadline()
	if !open {
		if !tentative {
			return nil, nil
		}
		dl = from + r.check.Duration
	}
	if dl <= from && !(open && r.tr.failed) {
		return nil, nil
	}
	t := r.o.NewTimer(dl - r.o.Clock.Now())
	return t, t.C()
}

func stop(t Timer) {
	if t != nil {
		t.Stop()
	}
}

// round runs the extra check and the probe under one deadline, the probe
// timeout, and cut short by the window's deadline. late is how late the
// round started on its schedule (pcheck was not scheduled).
func (r *Runner) round(ctx context.Context, slot, late time.Duration) Result {
	var judge Judge
	if r.o.Starved != nil {
		judge = r.o.Starved()
	}
	began := r.o.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, r.check.Timeout)
	defer cancel()
	done := make(chan roundErr, 1)
	extraErr := make(chan error, 1) // the extra check's result, once known
	go func() { done <- r.probeOnce(pctx, extraErr) }()

	var excusedHere time.Duration // of this round, taken while in flight
	timer, deadline := r.deadlineTimer(slot, true)
	for {
		select {
		case e := <-done:
			stop(timer)
			if ctx.Err() != nil {
				return Result{} // the checks end: not a failure of the server's
			}
			end := r.o.Clock.Now()
			err := e.err()
			r.lastErr = err
			if err == nil {
				r.succeeded(end)
				return Result{At: slot}
			}
			r.failed(slot, err)
			if !e.timedOut() {
				// A refused connection, a wrong answer or a full accept
				// queue is an answer: no starvation makes it.
			} else if why, ok := r.starved(judge, end-began, late); ok {
				r.excuse(max(r.check.Interval, end-slot)-excusedHere, why, end)
			}
			if r.tr.Stalled(end) {
				return r.stall(end, err)
			}
			return r.result(slot, err)
		case <-deadline:
			now := r.o.Clock.Now()
			r.tr.Fail(slot) // in flight at the deadline: this round failed
			var extra error
			select {
			case extra = <-extraErr:
				extraErr <- extra // for the next deadline of this round
			default:
			}
			if extra != nil {
				// The listen check answered: not starvation.
			} else if why, ok := r.starved(judge, now-began, late); ok {
				excusedHere += r.excuse(now-slot-excusedHere, why, now)
			}
			if !r.tr.Stalled(now) {
				timer, deadline = r.deadlineTimer(slot, true)
				continue
			}
			cancel()
			e := <-done
			err := ErrNoAnswer
			if e.extra != nil {
				err = errors.Join(e.extra, ErrNoAnswer)
			}
			r.lastErr = err
			return r.stall(now, err)
		}
	}
}

type roundErr struct{ extra, probe error }

func (e roundErr) err() error { return errors.Join(e.extra, e.probe) }

// timedOut says the round failed for want of an answer in time alone, the
// only failure starvation can cause.
func (e roundErr) timedOut() bool {
	return e.extra == nil && errors.Is(e.probe, context.DeadlineExceeded)
}

// probeOnce runs the extra check, then the probe; the extra check's result
// also goes to extraErr as soon as it is known. The extra check (local,
// quick) goes first so that a hanging probe cannot leave it an expired
// context, and it runs whatever the probe does: a full accept queue matters
// most when the service does not answer.
func (r *Runner) probeOnce(ctx context.Context, extraErr chan<- error) roundErr {
	var e roundErr
	if r.o.Extra != nil {
		e.extra = r.o.Extra(ctx)
	}
	extraErr <- e.extra
	e.probe = r.o.Probe(ctx)
	return e
}

// starved is the evidence that a failed round was starvation: the round
// started late by a large share of the interval (pcheck was not
// scheduled), or the judge says so.
func (r *Runner) starved(judge Judge, elapsed, late time.Duration) (string, bool) {
	if late >= r.check.Interval/starvedShare {
		return fmt.Sprintf("pcheck started the round %v late", late.Round(time.Millisecond)), true
	}
	if judge == nil {
		return "", false
	}
	return judge(elapsed)
}

// starvedShare: a wait of 1/starvedShare of a period is a large share.
const starvedShare = 4

// excuse takes d out of the window's count and logs it (rate-limited);
// it returns what was taken.
func (r *Runner) excuse(d time.Duration, why string, now time.Duration) time.Duration {
	got := r.tr.Excuse(d)
	if got <= 0 {
		return 0
	}
	r.notCountedN++
	if r.notCountedYet && now-r.notCountedAt < notCountedEvery {
		return got
	}
	r.o.Logger.Info("stall check failure not counted: starved, not stalled",
		"why", why, "not_counted", r.tr.Excused(), "rounds", r.notCountedN)
	r.notCountedYet, r.notCountedAt, r.notCountedN = true, now, 0
	return got
}

func (r *Runner) succeeded(now time.Duration) {
	since, open := r.tr.FailingSince()
	switch {
	case r.tr.Starting():
		r.o.Logger.Debug("stall check answered for the first time", "after", now-since)
	case open:
		r.o.Logger.Info("stall check recovered", "failed_for", now-since, "not_counted", r.tr.Excused())
	}
	r.tr.Succeed()
}

func (r *Runner) failed(slot time.Duration, err error) {
	since, open := r.tr.FailingSince()
	switch {
	case r.tr.Starting():
		r.o.Logger.Debug("stall check waiting for the first answer", "waited", slot-since, "err", err)
	case !open:
		r.o.Logger.Info("stall check failing", "err", err)
	default:
		r.o.Logger.Debug("stall check still failing", "failing_for", slot-since, "err", err)
	}
	r.tr.Fail(slot)
}

func (r *Runner) result(at time.Duration, err error) Result {
	since, _ := r.tr.FailingSince()
	return Result{At: at, Err: err, FailingSince: since, Starting: r.tr.Starting(), Excused: r.tr.Excused()}
}

// stall declares the open window a stall at now.
func (r *Runner) stall(now time.Duration, err error) Result {
	res := r.result(now, err)
	res.Stalled = true
	r.o.Logger.Warn("stall detected", "failing_for", now-res.FailingSince, "not_counted", res.Excused,
		"starting", res.Starting, "err", err)
	r.o.OnStall(Stall{Check: r.check, FailingSince: res.FailingSince, At: now, Excused: res.Excused,
		Starting: res.Starting, Err: err})
	r.tr.Reset()
	return res
}

// report hands res on and says whether Run is to return.
func (r *Runner) report(res Result) bool {
	if r.o.OnResult != nil {
		r.o.OnResult(res)
	}
	return res.Stalled && r.check.StopAfterDetect
}

// slot is the time of this round on the runner's interval grid. A tick
// wakes the runner a little late by a varying amount; measured as read,
// the round that completes a duration that is a multiple of the interval
// would fall a hair short of it half the time, and the stall would be
// declared one interval late.
func (r *Runner) slot(start, now time.Duration) time.Duration {
	i := r.check.Interval
	return start + (now-start+i/2)/i*i
}

type monotonic struct{ start time.Time }

func (m monotonic) Now() time.Duration { return time.Since(m.start) }

type timeTicker struct{ t *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.t.C }
func (t timeTicker) Stop()               { t.t.Stop() }

type timeTimer struct{ t *time.Timer }

func (t timeTimer) C() <-chan time.Time { return t.t.C }
func (t timeTimer) Stop() bool          { return t.t.Stop() }
