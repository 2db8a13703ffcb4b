// SPDX-License-Identifier: Apache-2.0

package probe

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// A sim runs the real Runner inside a synctest bubble: the time package's
// clock is fake there, and advances only once every goroutine is blocked,
// so a run of any length takes no real time and every instant is settled
// before the next. The runner's ticker, timers and probe timeout are the
// production ones (time.NewTicker, time.NewTimer, context.WithTimeout),
// except that a schedule with late ticks gets a ticker that fires late.

// simClock is the runner's monotonic clock, shifted by offset: the rule
// must depend on differences only (property 5).
type simClock struct {
	t0     time.Time
	offset time.Duration
}

func (c simClock) Now() time.Duration { return time.Since(c.t0) + c.offset }

// lateTicker fires like a time.Ticker (one tick held for a busy reader,
// the rest dropped), the tick of grid point k late by late(k).
type lateTicker struct {
	c    chan time.Time
	stop chan struct{}
	once sync.Once
}

func newLateTicker(interval time.Duration, late func(k int) time.Duration) *lateTicker {
	t := &lateTicker{c: make(chan time.Time, 1), stop: make(chan struct{})}
	t0 := time.Now()
	go func() {
		for k := 1; ; k++ {
			tm := time.NewTimer(time.Until(t0.Add(time.Duration(k)*interval + late(k))))
			select {
			case <-t.stop:
				tm.Stop()
				return
			case now := <-tm.C:
				select {
				case t.c <- now:
				default:
				}
			}
		}
	}()
	return t
}

func (t *lateTicker) C() <-chan time.Time { return t.c }
func (t *lateTicker) Stop()               { t.once.Do(func() { close(t.stop) }) }

// simOut is what a sim saw, in times since Up.
type simOut struct {
	began   []time.Duration // each probe's start
	results []Result
	stall   *Stall
}

// server answers a probe begun at b as the schedule says: after the
// answer's time, or, when it would time out, only when ctx ends.
func server(s Schedule, clock Clock, offset time.Duration, began *[]time.Duration, mu *sync.Mutex) func(context.Context) error {
	return func(ctx context.Context) error {
		b := clock.Now() - offset
		mu.Lock()
		*began = append(*began, b)
		mu.Unlock()
		var after time.Duration
		var err error
		switch {
		case b < s.StartDelay && s.FailAfter < s.Timeout:
			after, err = s.FailAfter, errDown
		case b >= s.StartDelay && b < s.HangAt && s.Latency <= s.Timeout:
			after = s.Latency
		default: // no answer: the round's timeout or its cut ends it
			<-ctx.Done()
			return ctx.Err()
		}
		if after == 0 {
			return err
		}
		tm := time.NewTimer(after)
		defer tm.Stop()
		select {
		case <-tm.C:
			return err
		case <-ctx.Done():
			if clock.Now()-offset >= b+after {
				return err // answered at the instant it was cancelled
			}
			return ctx.Err()
		}
	}
}

// simulate runs check c (with the schedule's timing) against the
// schedule's server until its horizon or its first stall (StopAfterDetect).
// It must be called inside a bubble.
func simulate(s Schedule, offset time.Duration) simOut {
	c := pfile.Check{Kind: pfile.KindHTTP, Block: "_bi_sim", Host: "127.0.0.1", Port: 1,
		Interval: s.Interval, Duration: s.Duration, Timeout: s.Timeout, StopAfterDetect: true}
	clock := simClock{t0: time.Now(), offset: offset}
	var mu sync.Mutex
	var out simOut
	n := 0
	o := Options{
		OnStall: func(st Stall) {
			mu.Lock()
			st.At -= offset
			st.FailingSince -= offset
			out.stall = &st
			mu.Unlock()
		},
		OnResult: func(r Result) {
			mu.Lock()
			r.At -= offset
			out.results = append(out.results, r)
			mu.Unlock()
		},
		Probe: server(s, clock, offset, &out.began, &mu),
		Starved: func() Judge {
			mu.Lock()
			starved := n < len(s.Starved) && s.Starved[n]
			n++
			mu.Unlock()
			return func(time.Duration) (string, bool) { return "the schedule says so", starved }
		},
		Clock: clock,
	}
	if len(s.Late) > 0 {
		o.NewTicker = func(d time.Duration) Ticker {
			return newLateTicker(d, func(k int) time.Duration {
				if k <= len(s.Late) {
					return s.Late[k-1]
				}
				return 0
			})
		}
	}
	r, err := NewRunner(c, o)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	tm := time.NewTimer(s.Horizon)
	select {
	case <-done:
	case <-tm.C:
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return out
}

// simulateIn runs simulate in a bubble of its own.
func simulateIn(t *testing.T, s Schedule, offset time.Duration) simOut {
	var out simOut
	synctest.Test(t, func(*testing.T) { out = simulate(s, offset) })
	return out
}
