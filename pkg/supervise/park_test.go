// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
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
