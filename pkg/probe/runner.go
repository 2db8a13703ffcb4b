package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

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

// Stall is a detected stall, handed to Options.OnStall.
type Stall struct {
	Check pfile.Check
	// FailingSince is the clock time of the first failed probe; At that of
	// the probe that made the stall.
	FailingSince, At time.Duration
	// Err is the last probe's error.
	Err error
}

// Result is one round of a check (the probe and the extra check), handed to
// Options.OnResult after OnStall for the same round.
type Result struct {
	At time.Duration
	// Err is nil when the round succeeded.
	Err error
	// FailingSince is meaningful when Err is not nil: the clock time of the
	// first failure of the current run of failures.
	FailingSince time.Duration
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
	// Clock defaults to a monotonic clock started with the runner.
	Clock Clock
	// NewTicker defaults to time.NewTicker.
	NewTicker func(time.Duration) Ticker
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Runner runs one _bi_ block's check on its own schedule.
type Runner struct {
	check pfile.Check
	o     Options
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("check", check.Block, "kind", check.Kind, "host", check.Host, "port", check.Port)
	return &Runner{check: check, o: o}, nil
}

// Run probes at once, then every interval, until ctx ends; each round is
// timed by the clock reading at its start. On a stall it
// calls OnStall, then returns if the check stops after its first detection
// (PS_EXEC error 1), else starts a new failure window and goes on.
func (r *Runner) Run(ctx context.Context) {
	t := r.o.NewTicker(r.check.Interval)
	defer t.Stop()
	tr := NewTracker(r.check.Duration)
	start := r.o.Clock.Now()
	for {
		now := r.slot(start)
		err := r.round(ctx)
		if ctx.Err() != nil {
			return
		}
		r.logTransition(tr, now, err)
		stalled := tr.Observe(now, err == nil)
		since, _ := tr.FailingSince()
		if stalled {
			r.o.Logger.Warn("stall detected", "failing_for", now-since, "err", err)
			r.o.OnStall(Stall{Check: r.check, FailingSince: since, At: now, Err: err})
			tr.Reset()
		}
		if r.o.OnResult != nil {
			r.o.OnResult(Result{At: now, Err: err, FailingSince: since, Stalled: stalled})
		}
		if stalled && r.check.StopAfterDetect {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// slot is the time of this round on the runner's interval grid. A tick
// wakes the runner a little late by a varying amount; measured as read,
// the round that completes a duration that is a multiple of the interval
// would fall a hair short of it half the time, and the stall would be
// declared one interval late.
func (r *Runner) slot(start time.Duration) time.Duration {
	i := r.check.Interval
	return start + (r.o.Clock.Now()-start+i/2)/i*i
}

// round runs the extra check and the probe under one deadline, the probe
// timeout. The extra check (local, quick) goes first so that a hanging
// probe cannot leave it an expired context, and it runs whatever the probe
// does: a full accept queue matters most when the service does not answer.
func (r *Runner) round(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.check.Timeout)
	defer cancel()
	var err error
	if r.o.Extra != nil {
		err = r.o.Extra(ctx)
	}
	return errors.Join(err, r.o.Probe(ctx))
}

func (r *Runner) logTransition(tr *Tracker, now time.Duration, err error) {
	since, failing := tr.FailingSince()
	switch {
	case err != nil && !failing:
		r.o.Logger.Info("stall check failing", "err", err)
	case err != nil:
		r.o.Logger.Debug("stall check still failing", "failing_for", now-since, "err", err)
	case failing:
		r.o.Logger.Info("stall check recovered", "failed_for", now-since)
	}
}

type monotonic struct{ start time.Time }

func (m monotonic) Now() time.Duration { return time.Since(m.start) }

type timeTicker struct{ t *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.t.C }
func (t timeTicker) Stop()               { t.t.Stop() }
