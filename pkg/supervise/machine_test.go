// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
)

// waitStep waits until padmin status shows the step want.
func (h *harness) waitStep(t *testing.T, want string) Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := h.svc.Status()
		if st.Step == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %q (state %v), want %q", st.Step, st.State, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A recovery is a sequence of steps of the loop, shown by status: the
// script runs (Restarting), and a Stop, taken at once as any input, ends
// it (the script is killed) and leaves the service Paused, at rest.
func TestStatusShowsTheStepAndStopEndsIt(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) {
		c.RestartScript = []string{writeScript(t, "exec sleep 600\n")}
		c.RestartTimeout = time.Hour
	})
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	if st := h.svc.Status(); st.Step != "" {
		t.Fatalf("an Up service at rest shows step %q", st.Step)
	}
	h.kill(9)
	if st := h.waitStep(t, "script running"); st.State != Restarting {
		t.Fatalf("while its script runs the service is %v, want Restarting", st.State)
	}
	// The loop answers while the script runs: it is not blocked on it.
	if !h.svc.Answering() {
		t.Fatal("the supervisor does not answer while its script runs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.svc.Stop(ctx); err != nil {
		t.Fatalf("stop during the script: %v", err)
	}
	if st := h.svc.Status(); st.State != Paused || st.Step != "" {
		t.Fatalf("after stop: %v, step %q; want Paused at rest", st.State, st.Step)
	}
}

// The pause between attempts is a step with its timer: status shows it
// with the time left, and it ends when the timer fires.
func TestStatusShowsThePause(t *testing.T) {
	h := policyHarness(t, "fail:1", func(c *pfile.Service) { c.RetryInterval = 5 * time.Second })
	h.run(t)
	h.log.waitLines(t, 0, "Set pid fail ('web')")
	if d := h.clock.waitTimer(t); d != 5*time.Second {
		t.Fatalf("pause %v, want 5s", d)
	}
	if st := h.waitStep(t, "pausing 5s"); st.State != Down || st.Next != NextAttempt {
		t.Fatalf("during the pause: %v, next %q; want Down, an attempt next", st.State, st.Next)
	}
	h.clock.advance(5 * time.Second)
	h.log.waitLines(t, 0, "Set pid fail ('web')", "Try to restart ('web')", "('web',pid=1001) Up")
	h.waitStep(t, "")
}

// The watchdog asks the loop: a step that outlasts its own bound (here the
// script's restart_timeout, on the service's clock) makes the supervisor
// stop answering, though its loop is idle.
func TestAnsweringWhenAStepOutlastsItsBound(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) {
		c.RestartScript = []string{writeScript(t, "exec sleep 600\n")}
		c.RestartTimeout = time.Hour
	})
	h.run(t)
	h.waitStep(t, "script running")
	h.clock.advance(time.Hour + stepSlack)
	if !h.svc.Answering() {
		t.Fatal("a step within its bound does not answer")
	}
	h.clock.advance(time.Second)
	if h.svc.Answering() {
		t.Fatal("a step past its bound still answers")
	}
	if err := h.svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !h.svc.Answering() {
		t.Fatal("a stopped supervisor at rest does not answer")
	}
}

// Every way to Up watches the processes first: one who sees the service
// Up and kills it at once is sure to have its death seen.
func TestWatchedBeforeUp(t *testing.T) {
	h := newHarness(t, "ok", nil)
	var mu sync.Mutex
	var upAtWatch []State
	h.watch.onWatch = func(proc.Match) {
		mu.Lock()
		defer mu.Unlock()
		upAtWatch = append(upAtWatch, h.svc.State())
	}
	h.running(t)
	h.run(t)
	h.log.waitLines(t, 0, "Running service adopted ('web',pid=1001)") // adopted
	h.kill(9)
	h.log.waitLines(t, 0, "('web',pid=1002) Up") // restarted
	mu.Lock()
	defer mu.Unlock()
	if len(upAtWatch) != 2 || slices.Contains(upAtWatch, Up) {
		t.Fatalf("states at each Watch %v, want two, none of them Up", upAtWatch)
	}
}
