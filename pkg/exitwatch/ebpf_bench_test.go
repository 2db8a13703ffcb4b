// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BenchmarkForkExitOverhead measures what the attached BPF programs cost a
// fork/exec/exit-heavy host: batches of short processes measured without
// the programs and with them attached (1,000 processes watched),
// alternating within one run so that drift in the machine's speed falls on
// both sides. overhead-% is the median of the rounds' differences in CPU
// time.
func BenchmarkForkExitOverhead(b *testing.B) {
	const perBatch = 200
	w := loadForOverhead(b)
	// The BPF programs run in the exiting and exec'ing tasks, so their cost
	// is in the CPU time of this process and its children, while
	// neighbours' load is not.
	measureOverhead(b, w, perBatch, "process", func() {
		for range perBatch {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSignalOverhead measures what the signal_generate program costs
// signals to processes nobody watches (1,000 others watched): 10,000
// SIGCONTs a batch to a running process, without and with the programs,
// alternating; the program runs in the sender, so its cost is in this
// process's CPU time.
func BenchmarkSignalOverhead(b *testing.B) {
	const perBatch = 10000
	w := loadForOverhead(b)
	target := exec.Command("/usr/bin/sleep", "1000")
	if err := target.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = target.Process.Kill()
		_ = target.Wait()
	})
	pid := target.Process.Pid // our unreaped child: the pid stays its own
	measureOverhead(b, w, perBatch, "signal", func() {
		for range perBatch {
			if err := unix.Kill(pid, unix.SIGCONT); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// loadForOverhead loads the ebpf backend watching 1,000 sleeping
// processes, its programs detached.
func loadForOverhead(b *testing.B) *ebpfWatcher {
	const watched = 1000
	requireBPF(b)
	ids := make([]proc.ID, watched)
	for i := range ids {
		cmd := exec.Command("/usr/bin/sleep", "1000")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		id, err := readID("/proc", cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	w := loadStarted(b)
	for _, id := range ids {
		if err := w.Watch(id); err != nil {
			b.Fatal(err)
		}
	}
	w.detach()
	return w
}

// requireBPF skips b, saying why, where BPF cannot load (as root; it
// fails under PWATCH_REQUIRE_PRIVILEGED).
func requireBPF(b *testing.B) {
	testpriv.Root(b)
	if err := probeEBPF(Options{}); errors.Is(err, ErrNotSupported) {
		testpriv.Unavailable(b, "BPF: "+err.Error())
	} else if err != nil {
		b.Fatalf("probing BPF: %v", err)
	}
}

// loadStarted loads the ebpf backend and starts its reader, closed at
// cleanup.
func loadStarted(b *testing.B) *ebpfWatcher {
	w, err := loadEBPF(Options{}, newSinkLog(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	w.start()
	return w
}

// measureOverhead runs work in rounds, alternately without and with the
// programs attached, and reports the CPU time per unit (perBatch units a
// batch) and the median of the rounds' differences. Attaching and
// detaching the loaded programs, rather than loading afresh, keeps the
// kernel's deferred freeing of old maps (charged to whichever task it
// interrupts) out of the measure.
func measureOverhead(b *testing.B, w *ebpfWatcher, perBatch int, unit string, work func()) {
	const rounds = 24
	batch := func() time.Duration {
		runtime.GC() // not the previous batch's garbage
		before := cpuTime(b)
		work()
		return cpuTime(b) - before
	}
	attachedBatch := func() time.Duration {
		if err := w.attach(); err != nil {
			b.Fatal(err)
		}
		defer w.detach()
		return batch()
	}
	var without, with time.Duration
	var overheads []float64 // per round: the median shrugs off a noisy neighbour
	for b.Loop() {
		for r := range rounds {
			var wi, wo time.Duration
			if r%2 == 0 {
				wo = batch()
				wi = attachedBatch()
			} else {
				wi = attachedBatch()
				wo = batch()
			}
			with += wi
			without += wo
			overheads = append(overheads, 100*(float64(wi)-float64(wo))/float64(wo))
		}
	}
	slices.Sort(overheads)
	n := float64(len(overheads) * perBatch)
	b.ReportMetric(float64(without.Nanoseconds())/n, "cpu-ns/"+unit+"-without")
	b.ReportMetric(float64(with.Nanoseconds())/n, "cpu-ns/"+unit+"-with")
	b.ReportMetric(overheads[len(overheads)/2], "overhead-%")
}

// cpuTime is the user and system time of this process and its reaped
// children so far.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if err := unix.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// BenchmarkTree is one read of the kernel's table of tracked processes, as
// every look of a restart awaiting its service shares one: 1,000 trees of
// two processes each (a service and its script's leftovers), put into the
// table as a start's would be. The reads are the start's second largest
// cost after the scripts' forks.
func BenchmarkTree(b *testing.B) {
	const trees = 1000
	requireBPF(b)
	w := loadStarted(b)
	// Pids past PID_MAX_LIMIT (2^22): no process of the host has them.
	const base = 1 << 23
	for i := range trees {
		root := proc.ID{PID: base + 2*i, StartTime: 100}
		if err := w.Track(root, []proc.Process{{ID: root}, {ID: proc.ID{PID: root.PID + 1, StartTime: 101}, PPID: root.PID}}); err != nil {
			b.Fatal(err)
		}
	}
	root := proc.ID{PID: base, StartTime: 100}
	b.ReportAllocs()
	for b.Loop() {
		tree, err := w.Tree(root)
		if err != nil || len(tree) != 1 {
			b.Fatalf("Tree = %v, %v; want its one member", tree, err)
		}
	}
}
