// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BenchmarkRestingStack is the stack a service at rest costs (Up, nothing
// due: its loop's goroutine sleeps in one select). A look's calls grow it
// (a real one reads /proc, matches, logs: deepFinds stands in for them);
// the runtime then halves a stack at each GC while under a quarter of it
// is in use, so what the sleeping frames hold (loop, wait, the runtime's
// select, plus 800 bytes of guard) decides where it stops: under 2 KiB of
// them, at 4 KiB rather than 8.
func BenchmarkRestingStack(b *testing.B) {
	const services = 1000
	marker := filepath.Join(b.TempDir(), "running")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		before := stackInUse()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		svcs := make([]*Service, services)
		procs := make([]*fakeProcs, services)
		for i := range svcs {
			procs[i] = &fakeProcs{marker: marker}
			svcs[i] = New(&pfile.Service{
				Name: "web", Process: "/usr/sbin/web", MinCount: 1,
				RestartScript: []string{"/bin/false"}, RestartTimeout: 10 * time.Second,
				RetryCount: 3, Grace: time.Hour, KillTimeout: time.Second,
				RetryOverAction: pfile.ActionContinue, StartOnLoad: true,
			}, Deps{
				Processes: deepFinds{procs[i]}, Watcher: &fakeWatcher{watched: map[proc.ID]bool{}, trees: true},
				Log: &recorder{more: make(chan struct{}, 1)}, Clock: &fakeClock{},
				Slog:         slog.New(slog.NewTextHandler(io.Discard, nil)),
				ScanInterval: time.Hour, IdleScanInterval: time.Hour,
			})
			wg.Add(1)
			go func() { defer wg.Done(); svcs[i].Run(ctx) }()
		}
		deadline := time.Now().Add(time.Minute)
		for _, s := range svcs {
			for s.State() != Up || s.Status().Step != "" {
				if time.Now().After(deadline) {
					b.Fatalf("state %v, step %q: not at rest", s.State(), s.Status().Step)
				}
				time.Sleep(time.Millisecond) // polled: the loop says nothing when at rest
			}
		}
		// Lost events: each loop looks again (on its own stack).
		looked := make([]int, services)
		for i, s := range svcs {
			looked[i] = procs[i].findCount()
			s.Resync()
		}
		for i, p := range procs {
			for p.findCount() == looked[i] || svcs[i].Status().Step != "" {
				if time.Now().After(deadline) {
					b.Fatal("a service did not look again after lost events")
				}
				time.Sleep(time.Millisecond) // polled: the loop says nothing when at rest
			}
		}
		b.ReportMetric(float64(stackInUse()-before)/services, "stack-B/service")
		cancel()
		wg.Wait()
	}
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
