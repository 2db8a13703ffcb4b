// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/pfile"
)

func TestPauseAfterGrowsToItsCap(t *testing.T) {
	cfg := &pfile.Service{RetryInterval: time.Second, RetryBackoff: 2, RetryIntervalMax: 10 * time.Second}
	var got []time.Duration
	for streak := 0; streak <= 7; streak++ {
		got = append(got, pauseAfter(cfg, streak, 0))
	}
	want := []time.Duration{0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
	// Jitter only shortens, by a tenth at most: the cap is never passed.
	for _, j := range []float64{0.5, 0.999} {
		for streak := 1; streak <= 7; streak++ {
			p, nominal := pauseAfter(cfg, streak, j), want[streak]
			if p > nominal || p < nominal*9/10 {
				t.Errorf("streak %d jitter %v: pause %s, want within [%s, %s]", streak, j, p, nominal*9/10, nominal)
			}
		}
	}
	// Without retry_backoff every pause is retry_interval, exactly.
	fixed := &pfile.Service{RetryInterval: 3 * time.Second, RetryBackoff: 1}
	for streak := 1; streak <= 5; streak++ {
		if p := pauseAfter(fixed, streak, 0.7); p != 3*time.Second {
			t.Fatalf("no backoff, streak %d: pause %s, want 3s", streak, p)
		}
	}
}

// policyHarness is a harness whose pauses and re-arms run on its fake
// clock, without jitter.
func policyHarness(t *testing.T, script string, edit func(*pfile.Service)) *harness {
	h := newHarness(t, script, edit)
	h.svc.d.After = h.clock.After
	h.svc.d.Jitter = func() float64 { return 0 }
	return h
}

// waitPauseOf waits for the pause before the next attempt, checks padmin
// status announces it, and lets it pass.
func (h *harness) passPause(t *testing.T) time.Duration {
	t.Helper()
	d := h.clock.waitTimer(t)
	if st := h.svc.Status(); st.Next != NextAttempt || st.NextIn != d {
		t.Fatalf("during a pause of %s: status next %q in %s", d, st.Next, st.NextIn)
	}
	h.clock.advance(d)
	return d
}

// The gaps between failed attempts grow by retry_backoff up to
// retry_interval_max, and the retries end as retry_count says.
func TestBackoffSequenceOnTheClock(t *testing.T) {
	h := policyHarness(t, "fail", func(c *pfile.Service) {
		c.RetryCount = 5
		c.RetryInterval, c.RetryBackoff, c.RetryIntervalMax = time.Second, 2, 5*time.Second
	})
	h.run(t)
	var gaps []time.Duration
	for range 6 { // after the first start and each of the 5 restarts
		gaps = append(gaps, h.passPause(t))
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(gaps, want) {
		t.Fatalf("gaps %v, want %v", gaps, want)
	}
	h.log.waitLines(t, 0, "Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
	env, _ := os.ReadFile(h.envLog)
	if got := strings.Count(string(env), "\n"); got != 6 {
		t.Fatalf("the script ran %d times, want 6 (a first start and 5 restarts):\n%s", got, env)
	}
}

// A service that dies soon after its restart waits its pause before the
// next (a crash loop slows down); one that stayed Up for stable_uptime
// starts again from retry_interval.
func TestBackoffForgottenAfterStableUptime(t *testing.T) {
	h := policyHarness(t, "ok", func(c *pfile.Service) {
		c.RetryCount = 100
		c.RetryInterval, c.RetryBackoff, c.RetryIntervalMax = time.Second, 2, time.Minute
		c.StableUptime = 30 * time.Second
	})
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	restartUp := func() {
		t.Helper()
		n := len(h.log.all())
		h.kill(9)
		h.log.waitLines(t, n, "Try to restart ('web')")
		h.waitState(t, Up)
	}
	// The adopted service's death is restarted at once: pcheck did not
	// start it, so its uptime says nothing about a crash loop.
	restartUp()
	var gaps []time.Duration
	for range 3 {
		n := len(h.log.all())
		h.kill(9)
		gaps = append(gaps, h.passPause(t))
		h.log.waitLines(t, n, "Try to restart ('web')")
		h.waitState(t, Up)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(gaps, want) {
		t.Fatalf("crash-loop gaps %v, want %v", gaps, want)
	}
	h.clock.advance(30 * time.Second) // stable now
	restartUp()
	if n := h.clock.pendingTimers(); n != 0 {
		t.Fatalf("a stable service's restart waited (%d timers)", n)
	}
	n := len(h.log.all())
	h.kill(9)
	if d := h.passPause(t); d != time.Second {
		t.Fatalf("after stable uptime the first pause is %s, want retry_interval (1s)", d)
	}
	h.log.waitLines(t, n, "Try to restart ('web')")
}

// After a retry over, rearm_after later the service is tried again with
// its attempts reset, and comes back Up.
func TestRearmAfterRetryOver(t *testing.T) {
	h := policyHarness(t, "fail:4", func(c *pfile.Service) {
		c.RetryCount = 2
		c.RearmAfter = time.Minute
	})
	h.run(t)
	// The first start and 2 restarts fail.
	h.log.waitLines(t, 0, "Try to restart ('web')", "Set pid fail ('web')", "Try to restart ('web')", "Set pid fail ('web')",
		"Try to restart ('web')", "Set pid fail ('web')", "Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
	if d := h.clock.waitTimer(t); d != time.Minute {
		t.Fatalf("re-arm timer %s, want rearm_after (1m)", d)
	}
	if st := h.svc.Status(); st.Next != NextRearm || st.NextIn != time.Minute || st.AttemptsLeft != 0 {
		t.Fatalf("retried over: status next %q in %s, %d left", st.Next, st.NextIn, st.AttemptsLeft)
	}
	n := len(h.log.all())
	h.clock.advance(59 * time.Second)
	if st := h.svc.Status(); st.State != RetryOver || st.NextIn != time.Second || len(h.log.all()) != n {
		t.Fatalf("before rearm_after: %+v", st)
	}
	h.clock.advance(time.Second)
	// Attempts reset: two more restarts (the 4th run fails, the 5th works).
	h.log.waitLines(t, n, "Try to restart ('web')", "Set pid fail ('web')", "Try to restart ('web')", "('web',pid=1001) Up")
	h.waitState(t, Up)
	env, _ := os.ReadFile(h.envLog)
	if !strings.HasSuffix(string(env), "rearm 0 1\nrearm 0 2\n") {
		t.Fatalf("re-arm restarts: script saw\n%s", env)
	}
	if st := h.svc.Status(); st.Restarts != 2 || st.AttemptsLeft != 0 || st.Next != "" {
		t.Fatalf("after the re-arm: %+v", st)
	}
}

// A service started by hand while in RetryOver is adopted, Up, its
// attempts reset.
func TestHandStartDuringRetryOverIsAdopted(t *testing.T) {
	h := policyHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 1; c.RearmAfter = time.Hour })
	h.run(t)
	h.log.waitLines(t, 0, "Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
	n := len(h.log.all())
	h.running(t) // by hand
	h.log.waitLines(t, n, "('web',pid=1001) Up")
	h.waitState(t, Up)
	if st := h.svc.Status(); st.Restarts != 0 || st.AttemptsLeft != 1 || st.Next != "" {
		t.Fatalf("adopted: %+v, want attempts reset and no re-arm", st)
	}
	for _, l := range h.log.all()[n:] {
		if strings.HasPrefix(l, "Try to restart") {
			t.Fatalf("pcheck restarted a service started by hand: %q", l)
		}
	}
}

// A hand start during the pause between attempts is adopted too.
func TestHandStartDuringAPauseIsAdopted(t *testing.T) {
	h := policyHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 3; c.RetryInterval = time.Hour })
	h.run(t)
	h.clock.waitTimer(t)
	h.running(t)
	h.log.waitLines(t, 0, "Set pid fail ('web')", "('web',pid=1001) Up")
	h.waitState(t, Up)
}

// memory records what a supervisor keeps for the next pcheck.
type memory struct {
	mu   sync.Mutex
	ops  []string
	fail error
}

func (m *memory) Keep(service string, e opstate.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = append(m.ops, "keep "+service+" "+e.State)
	return m.fail
}

func (m *memory) Drop(service string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = append(m.ops, "drop "+service)
	return m.fail
}

func (m *memory) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ops)
}

// waitOps waits (bounded) until n operations were kept or dropped.
func (m *memory) waitOps(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(m.all()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("kept %q after 30s, want %d operations", m.all(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPausedAndRetryOverAreKept(t *testing.T) {
	mem := &memory{}
	h := policyHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 1 })
	h.svc.d.Memory = mem
	h.run(t)
	h.waitState(t, RetryOver)
	mem.waitOps(t, 1) // the state is set before the loop keeps it
	if err := h.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.log.waitLines(t, 0, "Retry over ('web') action=continue", "Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
	mem.waitOps(t, 4)
	if err := h.svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// start and stop write before they change anything (refused whole
	// when that fails), and the loop writes again once it acts: something
	// may have been kept or dropped in between.
	want := []string{"keep web retry_over", "drop web", "drop web", "keep web retry_over", "keep web paused", "keep web paused"}
	if got := mem.all(); !slices.Equal(got, want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
	// A stop that cannot be kept says so.
	mem.fail = fmt.Errorf("disk full")
	if err := h.svc.Stop(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("stop with a failing store: %v", err)
	}
	// and a start too, changing nothing.
	if err := h.svc.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("start with a failing store: %v", err)
	}
	if st := h.svc.State(); st != Paused {
		t.Fatalf("after a start that could not be kept: %v, want Paused", st)
	}
}

func TestRestoredStateIsKeptAtStart(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		h := policyHarness(t, "ok", nil)
		h.svc.Restore(opstate.Entry{State: opstate.Paused, Since: time.Now()})
		h.run(t)
		// A command is handled after the loop's start: once it is
		// answered, the start is behind us.
		if err := h.svc.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := h.svc.State(); st != Paused {
			t.Fatalf("state %v, want Paused", st)
		}
		if _, err := os.Stat(h.envLog); err == nil {
			t.Fatal("a restored paused service was started")
		}
	})
	t.Run("retry over", func(t *testing.T) {
		h := policyHarness(t, "ok", func(c *pfile.Service) { c.RearmAfter = time.Minute })
		restored := time.Now()
		h.svc.Restore(opstate.Entry{State: opstate.RetryOver, Since: restored.Add(-50 * time.Second)})
		h.run(t)
		d := h.clock.waitTimer(t)
		// Since is wall-clock time: what passed since is not left.
		if d > 10*time.Second || d < 10*time.Second-time.Since(restored) {
			t.Fatalf("re-arm after %s, want the 10s left of rearm_after", d)
		}
		if _, err := os.Stat(h.envLog); err == nil {
			t.Fatal("a restored retried-over service was started before its re-arm")
		}
		h.clock.advance(d)
		h.log.waitLines(t, 0, "Try to restart ('web')", "('web',pid=1001) Up")
	})
}

// A reload's new supervisor goes on with the attempts of the old one:
// the recovery under way is not started afresh.
func TestCarriedHistoryContinuesTheRecovery(t *testing.T) {
	edit := func(c *pfile.Service) { c.RetryCount = 3; c.RetryInterval = time.Hour; c.Grace = 24 * time.Hour }
	old := policyHarness(t, "fail", edit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { old.svc.Run(ctx); close(done) }()
	old.log.waitLines(t, 0, "Set pid fail ('web')") // the first start
	old.passPause(t)
	old.log.waitLines(t, 0, "Set pid fail ('web')", "Set pid fail ('web')") // restart 1
	old.clock.waitTimer(t)
	cancel()
	<-done

	next := policyHarness(t, "fail", edit)
	next.clock, next.svc.d.Clock, next.svc.d.After = old.clock, old.clock, old.clock.After
	next.envLog = old.envLog
	next.svc.d.Processes = old.procs
	next.svc.cfg.RestartScript = old.svc.cfg.RestartScript
	next.svc.Carry(old.svc.History())
	next.run(t)
	if st := next.svc.Status(); st.Restarts != 1 || st.AttemptsLeft != 2 {
		t.Fatalf("carried: %+v", st)
	}
	old.clock.advance(time.Hour) // the pause in progress, carried over
	next.log.waitLines(t, 0, "Try to restart ('web')", "Set pid fail ('web')")
	next.passPause(t)
	next.log.waitLines(t, 0, "Set pid fail ('web')", "Set pid fail ('web')")
	next.passPause(t)
	next.log.waitLines(t, 0, "Set pid fail ('web')", "Set pid fail ('web')", "Retry over ('web') action=continue")
	env, _ := os.ReadFile(old.envLog)
	if got, want := string(env), "start 0 0\nstart 0 1\nstart 0 2\nstart 0 3\n"; got != want {
		t.Fatalf("attempts seen by the script:\n%s\nwant\n%s", got, want)
	}
}
