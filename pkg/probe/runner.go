// SPDX-License-Identifier: Apache-2.0

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
	// At is the round's due time on the grid (Up + k*interval), or the
	// time a stall was declared.
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
	start time.Duration // Up: the grid's origin

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

// Run probes at once, then every interval, until ctx ends, and declares a
// stall by the rule (see the package's model, model.go): a window opens at
// Up (starting) or at the start of the first failed round after a success,
// and is a stall once its deadline (duration after it opened, plus the
// failure time excused as starvation) has passed with no answer. A round
// due at or before the deadline runs before the deadline is judged,
// whichever of the runner's timers fires first. While starting, such a
// round is heard out (up to its timeout); after the first success an answer
// must come by the deadline, and a probe still in flight then is
// cancelled. Every judgement is made from clock readings (a round's due
// time, the moment its probe answered), never from the order in which
// channels fire. Run calls OnStall, then returns if the check stops after
// its first detection (PS_EXEC error 1), else goes on with no window open.
func (r *Runner) Run(ctx context.Context) {
	start := r.o.Clock.Now()
	// Made after start was read: its ticks never come before their grid
	// point, only after it.
	t := r.o.NewTicker(r.check.Interval)
	defer t.Stop()
	r.start = start
	r.tr.Start(start)
	due, waitedFrom := start, start
	for {
		began := r.o.Clock.Now()
		res := r.round(ctx, due, began, began-max(due, waitedFrom))
		if ctx.Err() != nil {
			return
		}
		if r.report(res) {
			return
		}
		due = r.nextDue(due, began)
		var ok bool
		if waitedFrom, ok = r.wait(ctx, t, due); !ok {
			return
		}
	}
}

// nextDue is the due time of the round after the one due at due that began
// at began. Rounds are due on the grid Up + k*interval; a round that began
// late (the one before it ran long, or pcheck was not scheduled) is
// followed by the next grid point, the ones it passed are skipped, as a
// time.Ticker drops the ticks of a busy reader.
func (r *Runner) nextDue(due, began time.Duration) time.Duration {
	i := r.check.Interval
	ceil := r.start + (began-r.start+i-1)/i*i
	return max(due+i, ceil)
}

// wait returns, with the time it began waiting, once the round due at due
// is due; a window's deadline that falls before it is a stall when it
// passes. A deadline at or after due is judged by that round (it runs
// first). It returns false when Run is to return.
func (r *Runner) wait(ctx context.Context, t Ticker, due time.Duration) (time.Duration, bool) {
	from := r.o.Clock.Now()
	for {
		now := r.o.Clock.Now()
		dl, open := r.tr.Deadline()
		before := open && dl < due
		if before && r.tr.Stalled(now) {
			if r.report(r.stall(now, r.lastErr)) {
				return from, false
			}
			continue
		}
		if now >= due {
			select { // a tick held for this round
			case <-t.C():
			default:
			}
			return from, true
		}
		var timer Timer
		var c <-chan time.Time
		if before {
			timer = r.o.NewTimer(dl - now)
			c = timer.C()
		}
		select {
		case <-ctx.Done():
			stop(timer)
			return from, false
		case <-t.C():
		case <-c:
		}
		stop(timer)
	}
}

// cut is the time the round begun at began is cut short, and false when
// nothing but its timeout bounds it: while starting (every round due by the
// deadline is heard out), and a round that would open a window of zero
// duration (it is judged when it ends).
func (r *Runner) cut(began time.Duration) (time.Duration, bool) {
	if r.tr.Starting() {
		return 0, false
	}
	dl, open := r.tr.Deadline()
	if !open {
		return began + r.check.Duration, r.check.Duration > 0
	}
	return dl, true
}

func (r *Runner) armCut(began time.Duration) (Timer, <-chan time.Time) {
	at, ok := r.cut(began)
	if !ok {
		return nil, nil
	}
	// Just after the deadline: an answer at the deadline is in time, and
	// is taken first whichever timer the runtime fires first.
	t := r.o.NewTimer(at - r.o.Clock.Now() + time.Nanosecond)
	return t, t.C()
}

func stop(t Timer) {
	if t != nil {
		t.Stop()
	}
}

// round runs the extra check and the probe under one deadline, the probe
// timeout, and cut short by the window's deadline. due is the round's time
// on the grid, began when it began; late is how long pcheck let it wait
// past its due time (pcheck was not scheduled).
func (r *Runner) round(ctx context.Context, due, began, late time.Duration) Result {
	var judge Judge
	if r.o.Starved != nil {
		judge = r.o.Starved()
	}
	pctx, cancel := context.WithTimeout(ctx, r.check.Timeout)
	defer cancel()
	done := make(chan roundErr, 1)
	extraErr := make(chan error, 1) // the extra check's result, once known
	go func() { done <- r.probeOnce(pctx, extraErr) }()

	var excusedHere time.Duration // of this round, taken while in flight
	// atCut judges the round, in flight at now past its cut: it has
	// failed; starvation may move the deadline. It says whether that is
	// a stall.
	atCut := func(now time.Duration, extra error) bool {
		r.tr.Fail(began)
		if extra != nil {
			// The listen check answered: not starvation.
		} else if why, ok := r.starved(judge, now-began, late); ok {
			excusedHere += r.excuse(now-due-excusedHere, why, now)
		}
		return r.tr.Stalled(now)
	}
	timer, deadline := r.armCut(began)
	for {
		select {
		case e := <-done:
			stop(timer)
			if ctx.Err() != nil {
				return Result{} // the checks end: not a failure of the server's
			}
			if at, ok := r.cut(began); ok && e.at > at && atCut(max(at, began), e.extra) {
				// The answer came after the deadline (the deadline's
				// timer woke the runner late): too late.
				return r.stall(max(at, began), r.noAnswer(e))
			}
			return r.ended(e, due, began, late, judge, excusedHere)
		case <-deadline:
			// Judged at the deadline (or when the round began, if it was
			// due by the deadline and woken after it).
			at, _ := r.cut(began)
			at = max(at, began)
			var extra error
			select {
			case extra = <-extraErr:
				extraErr <- extra // for the next deadline of this round
			default:
			}
			if !atCut(at, extra) {
				timer, deadline = r.armCut(began)
				continue
			}
			cancel()
			e := <-done
			switch {
			case e.at <= at && !errors.Is(e.probe, context.Canceled):
				// It answered by the deadline, before it was cancelled.
				return r.ended(e, due, began, late, judge, excusedHere)
			case e.probe != nil && began+r.check.Timeout <= at:
				// Its timeout came first (at the same instant).
				e.probe, e.at = context.DeadlineExceeded, began+r.check.Timeout
				return r.ended(e, due, began, late, judge, excusedHere)
			}
			return r.stall(at, r.noAnswer(e))
		}
	}
}

// noAnswer is the error of a round that did not answer by the deadline.
func (r *Runner) noAnswer(e roundErr) error {
	err := ErrNoAnswer
	if e.extra != nil {
		err = errors.Join(e.extra, ErrNoAnswer)
	}
	r.lastErr = err
	return err
}

// ended judges a round whose probe answered (or failed, or timed out) at
// e.at, in time.
func (r *Runner) ended(e roundErr, due, began, late time.Duration, judge Judge, excusedHere time.Duration) Result {
	err := e.err()
	r.lastErr = err
	if err == nil {
		r.succeeded(e.at)
		return Result{At: due}
	}
	r.failed(began, err)
	if !e.timedOut() {
		// A refused connection, a wrong answer or a full accept
		// queue is an answer: no starvation makes it.
	} else if why, ok := r.starved(judge, e.at-began, late); ok {
		r.excuse(max(r.check.Interval, e.at-due)-excusedHere, why, e.at)
	}
	// A round due by the deadline is still to run: it is judged first.
	if dl, _ := r.tr.Deadline(); r.tr.Stalled(e.at) && r.nextDue(due, began) > dl {
		return r.stall(r.o.Clock.Now(), err)
	}
	return r.result(due, err)
}

// roundErr is a round's outcome; at is the clock time its probe returned.
type roundErr struct {
	extra, probe error
	at           time.Duration
}

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
	e.at = r.o.Clock.Now()
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

func (r *Runner) failed(began time.Duration, err error) {
	since, open := r.tr.FailingSince()
	switch {
	case r.tr.Starting():
		r.o.Logger.Debug("stall check waiting for the first answer", "waited", began-since, "err", err)
	case !open:
		r.o.Logger.Info("stall check failing", "err", err)
	default:
		r.o.Logger.Debug("stall check still failing", "failing_for", began-since, "err", err)
	}
	r.tr.Fail(began)
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

type monotonic struct{ start time.Time }

func (m monotonic) Now() time.Duration { return time.Since(m.start) }

type timeTicker struct{ t *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.t.C }
func (t timeTicker) Stop()               { t.t.Stop() }

type timeTimer struct{ t *time.Timer }

func (t timeTimer) C() <-chan time.Time { return t.t.C }
func (t timeTimer) Stop() bool          { return t.t.Stop() }
