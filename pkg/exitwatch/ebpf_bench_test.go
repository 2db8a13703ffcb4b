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
	const (
		rounds   = 24
		perBatch = 200
		watched  = 1000
	)
	testpriv.Root(b)
	if err := probeEBPF(Options{}); errors.Is(err, ErrNotSupported) {
		testpriv.Unavailable(b, "BPF: "+err.Error())
	} else if err != nil {
		b.Fatalf("probing BPF: %v", err)
	}

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

	// batch runs perBatch short processes and returns the CPU time they and
	// this process spent: the BPF programs run in the exiting and exec'ing
	// tasks, so their cost is there, while neighbours' load is not.
	batch := func() time.Duration {
		runtime.GC() // not the previous batch's garbage
		before := cpuTime(b)
		for range perBatch {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
		return cpuTime(b) - before
	}
	w, err := loadEBPF(Options{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	w.start()
	for _, id := range ids {
		if err := w.Watch(id); err != nil {
			b.Fatal(err)
		}
	}
	// Attaching and detaching the loaded programs, rather than loading
	// afresh, keeps the kernel's deferred freeing of old maps (charged to
	// whichever task it interrupts) out of the measure.
	attachedBatch := func() time.Duration {
		if err := w.attach(); err != nil {
			b.Fatal(err)
		}
		defer w.detach()
		return batch()
	}
	w.detach()

	var without, with time.Duration
	var overheads []float64 // per round: the median shrugs off a noisy neighbour
	for b.Loop() {
		for r := range rounds {
			var w, o time.Duration
			if r%2 == 0 {
				o = batch()
				w = attachedBatch()
			} else {
				w = attachedBatch()
				o = batch()
			}
			with += w
			without += o
			overheads = append(overheads, 100*(float64(w)-float64(o))/float64(o))
		}
	}
	slices.Sort(overheads)
	n := float64(len(overheads) * perBatch)
	b.ReportMetric(float64(without.Nanoseconds())/n, "cpu-ns/process-without")
	b.ReportMetric(float64(with.Nanoseconds())/n, "cpu-ns/process-with")
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
