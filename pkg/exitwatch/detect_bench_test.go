// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
)

// benchWatched is how many processes each round watches and kills.
const benchWatched = 1000

// BenchmarkDetect measures, per backend, the time from kill(2) to the exit
// event received here in user space, with benchWatched processes watched.
// Each round kills them one at a time, waiting for each event before the
// next kill, so every sample is one death's latency. Starting processes is
// not timed. The proc backend polls every testPollInterval, so its
// latency is about half that interval on average and up to all of it.
func BenchmarkDetect(b *testing.B) {
	testpriv.Root(b)
	for _, name := range Backends() {
		b.Run(name, func(b *testing.B) {
			w, sink := openBackend(b, name)
			// samples: kill to event received here; seen: kill to the
			// backend's own timestamp (Event.At), which leaves out the
			// hand-off to this goroutine.
			var samples, seen []time.Duration
			for b.Loop() {
				b.StopTimer()
				procs := make([]*testproc.Proc, benchWatched)
				for i := range procs {
					procs[i] = testproc.Sleep(b)
					if err := w.Watch(procs[i].ID); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for _, p := range procs {
					killed := monotonicNow()
					p.Signal(syscall.SIGKILL)
					ev := awaitExit(b, w, sink, p)
					samples = append(samples, monotonicNow()-killed)
					seen = append(seen, ev.At-killed)
					if ev.Signal != int(syscall.SIGKILL) {
						b.Fatalf("%s: event %+v, want SIGKILL", name, ev)
					}
				}
			}
			slices.Sort(samples)
			slices.Sort(seen)
			b.ReportMetric(percentile(samples, 50).Seconds()*1e6, "p50-us")
			b.ReportMetric(percentile(samples, 99).Seconds()*1e6, "p99-us")
			b.ReportMetric(percentile(seen, 99).Seconds()*1e6, "seen-p99-us")
			b.ReportMetric(0, "ns/op") // per-op time is a round of 1000 kills: meaningless here
		})
	}
}

// awaitExit reads w's events from its sink until p's exit arrives.
func awaitExit(b *testing.B, w Watcher, sink *sinkLog, p *testproc.Proc) Event {
	timeout := time.After(eventDeadline)
	for {
		ev, ok := sink.next(timeout, w.Done())
		if !ok {
			b.Fatalf("no exit of %v within %v (or the backend ended)", p.ID, eventDeadline)
		}
		if ev.Kind == Exit && ev.ID == p.ID {
			return ev
		}
	}
}

// percentile of sorted samples, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
