// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// A service at rest with nothing due has no goroutine: its loop parks,
// and an input runs it again.
func TestRestingServicesHaveNoGoroutine(t *testing.T) {
	const services = 200
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	r := superviseResting(t, ctx, services)
	// A parked loop's goroutine returns just after it set parked: wait
	// for the last ones to be gone.
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before+services/10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d services at rest (%d before them)", runtime.NumGoroutine(), services, before)
		}
		time.Sleep(time.Millisecond) // polled: nothing tells of a goroutine's end
	}
	// Parked, they still hear every input, and end with their ctx.
	r.lookAgain(t)
	cancel()
	for i, s := range r.svcs {
		select {
		case <-s.Ended():
		case <-time.After(20 * time.Second):
			t.Fatalf("service %d did not end with its ctx", i)
		}
	}
}

// An input that comes as the loop parks is never lost: each of many
// inputs, sent from goroutines racing the loop's park, gets its look.
func TestParkingLosesNoInput(t *testing.T) {
	r := superviseResting(t, t.Context(), 1)
	s, procs := r.svcs[0], r.procs[0]
	const rounds = 2000
	for i := range rounds {
		looked := procs.findCount()
		var wg sync.WaitGroup
		for range 2 { // two senders: one signal may find the other's
			wg.Add(1)
			go func() { defer wg.Done(); s.Resync() }()
		}
		wg.Wait()
		deadline := time.Now().Add(20 * time.Second)
		for procs.findCount() == looked {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: lost events were told, and the service never looked", i)
			}
			runtime.Gosched() // polled: the loop says nothing when it has looked
		}
	}
}

// A loop parks while its step's job runs (here the restart script): a
// start of thousands of services holds one goroutine each, the job's.
// The job's end runs the loop again, and so does its ctx's end, after
// which the loop drains the job and ends.
func TestLoopParksWhileItsJobRuns(t *testing.T) {
	for _, end := range []string{"job", "ctx"} {
		t.Run(end, func(t *testing.T) {
			h := newHarness(t, "ok", nil)
			release := h.scriptWaitsFor(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go h.svc.Run(ctx)
			h.waitStep(t, "script running")
			deadline := time.Now().Add(20 * time.Second)
			for !h.svc.isParked() {
				if time.Now().After(deadline) {
					t.Fatal("the loop did not park while the script ran")
				}
				time.Sleep(time.Millisecond) // polled: parking tells no one
			}
			switch end {
			case "job":
				if err := os.WriteFile(release, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				h.waitState(t, Up)
			case "ctx":
				cancel()
				select {
				case <-h.svc.Ended():
				case <-time.After(20 * time.Second):
					t.Fatal("a loop parked on its job did not end with its ctx")
				}
			}
		})
	}
}

// scriptWaitsFor makes the restart script run until the file it returns
// exists, then start the service. Call it before the service runs.
func (h *harness) scriptWaitsFor(t *testing.T) (release string) {
	release = filepath.Join(t.TempDir(), "release")
	h.svc.cfg.RestartScript = []string{writeScript(t, fmt.Sprintf(
		"while [ ! -e %s ]; do sleep 0.01; done\ntouch %s\n", release, h.procs.marker))}
	return release
}

// isParked says the loop's goroutine is gone until an input.
func (s *Service) isParked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parked != nil
}

// recovery_timeout passing while the loop is parked on the restart script
// still reboots: the recovery's end (and the script's job, which ends
// with it) runs the loop again.
func TestRecoveryTimeoutReachesALoopParkedOnItsScript(t *testing.T) {
	rec := &rebootRecorder{calls: make(chan string, 4)}
	h := newHarness(t, "ok", func(c *pfile.Service) {
		c.RecoveryTimeout = 300 * time.Millisecond
		c.RetryOverAction = pfile.ActionReboot
	})
	h.svc.d.Reboot = rec.reboot
	release := h.scriptWaitsFor(t)
	defer os.WriteFile(release, nil, 0o644)
	h.run(t)
	h.waitStep(t, "script running")
	select {
	case <-rec.calls:
	case <-time.After(20 * time.Second):
		t.Fatal("recovery_timeout passed during the script and did not reboot")
	}
	h.log.waitLines(t, 0, "Try to restart ('web')", "Recovery timeout ('web'): not back within 300ms; rebooting")
}
