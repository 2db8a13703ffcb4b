// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BenchmarkRestingStack is the stack a service at rest costs (Up, nothing
// due). A look's calls grow a goroutine's stack (a real one reads /proc,
// matches, logs: deepFinds stands in for them). A loop that slept in a
// select kept 4 KiB of it, once its sleeping frames were made small enough
// for the runtime to halve the 8 KiB; a parked loop has no goroutine, so
// nothing.
func BenchmarkRestingStack(b *testing.B) {
	const services = 1000
	for range b.N {
		before := stackInUse()
		ctx, cancel := context.WithCancel(context.Background())
		r := superviseResting(b, ctx, services)
		// Lost events: each loop looks again (on its own stack).
		r.lookAgain(b)
		b.ReportMetric(float64(stackInUse()-before)/services, "stack-B/service")
		cancel()
		for _, s := range r.svcs {
			<-s.Ended()
		}
	}
}

// resting is n services Up and at rest, each adopting its one process.
type resting struct {
	svcs  []*Service
	procs []*fakeProcs
}

// superviseResting supervises n services until ctx ends, and waits until
// all are Up and at rest.
func superviseResting(tb testing.TB, ctx context.Context, n int) resting {
	tb.Helper()
	marker := filepath.Join(tb.TempDir(), "running")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	r := resting{svcs: make([]*Service, n), procs: make([]*fakeProcs, n)}
	for i := range r.svcs {
		r.procs[i] = &fakeProcs{marker: marker}
		r.svcs[i] = New(&pfile.Service{
			Name: "web", Process: "/usr/sbin/web", MinCount: 1,
			RestartScript: []string{"/bin/false"}, RestartTimeout: 10 * time.Second,
			RetryCount: 3, Grace: time.Hour, KillTimeout: time.Second,
			RetryOverAction: pfile.ActionContinue, StartOnLoad: true,
		}, Deps{
			Processes: deepFinds{r.procs[i]}, Watcher: &fakeWatcher{watched: map[proc.ID]bool{}, trees: true},
			Log: &recorder{more: make(chan struct{}, 1)}, Clock: &fakeClock{},
			Slog:         slog.New(slog.NewTextHandler(io.Discard, nil)),
			ScanInterval: time.Hour, IdleScanInterval: time.Hour,
		})
		r.svcs[i].Supervise(ctx, time.Time{})
	}
	r.waitAtRest(tb)
	return r
}

func (r resting) waitAtRest(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, s := range r.svcs {
		for s.State() != Up || !s.AtRest() {
			if time.Now().After(deadline) {
				tb.Fatalf("state %v, step %q: not at rest", s.State(), s.Status().Step)
			}
			time.Sleep(time.Millisecond) // polled: the loop says nothing when at rest
		}
	}
}

// lookAgain tells every service that events were lost and waits until
// each has looked again and is back at rest.
func (r resting) lookAgain(tb testing.TB) {
	tb.Helper()
	looked := make([]int, len(r.svcs))
	for i, s := range r.svcs {
		looked[i] = r.procs[i].findCount()
		s.Resync()
	}
	deadline := time.Now().Add(time.Minute)
	for i, p := range r.procs {
		for p.findCount() == looked[i] {
			if time.Now().After(deadline) {
				tb.Fatalf("service %d did not look again after lost events", i)
			}
			time.Sleep(time.Millisecond) // polled: the loop says nothing when at rest
		}
	}
	r.waitAtRest(tb)
}

// stackInUse is the goroutine stacks' memory after two collections (each
// halves a stack that may shrink).
func stackInUse() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.StackInuse
}

// deepFinds is fakeProcs whose looks use 16 KiB of stack, as a real look
// through /proc does.
type deepFinds struct{ *fakeProcs }

func (d deepFinds) Find() ([]proc.Match, error) {
	burnStack(16)
	return d.fakeProcs.Find()
}

func (d deepFinds) FindSince(t time.Time) ([]proc.Match, error) {
	burnStack(16)
	return d.fakeProcs.FindSince(t)
}

//go:noinline
func burnStack(depth int) byte {
	var frame [1024]byte
	frame[depth%len(frame)] = byte(depth)
	if depth > 0 {
		frame[0] += burnStack(depth - 1)
	}
	return frame[0]
}

func (f *fakeProcs) findCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finds
}
