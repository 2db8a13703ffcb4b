// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/proc"
)

func bpfReader(t *testing.T, maxSampled uint32) *BPFReader {
	t.Helper()
	testpriv.Root(t)
	r, err := newBPFReader("", maxSampled)
	if err != nil {
		testpriv.Unavailable(t, "the sampler's BPF iterator: "+err.Error())
	}
	t.Cleanup(r.Close)
	return r
}

// startSleep starts `sleep 60` with two descriptors more than stdio and
// returns its identity once it sleeps: an exec'd sleep still in its loader
// faults pages in, and two reads a moment apart would see different memory.
func startSleep(t *testing.T) proc.ID {
	t.Helper()
	cmd := exec.Command("sh", "-c", "exec 3</dev/null 4</dev/null; exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	dir := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		exe, _ := os.Readlink(dir + "/exe")
		wchan, _ := os.ReadFile(dir + "/wchan")
		if filepath.Base(exe) == "sleep" && strings.Contains(string(wchan), "nanosleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sh did not exec sleep, or sleep never slept (exe %q, wchan %q)", exe, wchan)
		}
	}
	id, _, err := proc.Identify("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The iterator's counters are /proc's: threads and descriptors exactly,
// the CPU time and the resident memory within what passes between the
// two reads.
func TestBPFReaderAgreesWithProc(t *testing.T) {
	r := bpfReader(t, 0)
	self, _, err := proc.Identify("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	sleep := startSleep(t)
	reqs := []Request{{ID: self, FDs: true}, {ID: sleep, FDs: true}}
	viaBPF, viaProc := map[proc.ID]Counters{}, map[proc.ID]Counters{}
	r.Read(reqs, viaBPF)
	r.slow.Read(reqs, viaProc)
	b, p := viaBPF[sleep], viaProc[sleep]
	// A sleep's resident pages may all sit in the CPUs' unflushed counter
	// parts (both readers then say 0): its memory is compared, not required.
	if len(viaBPF) != 2 || b.Threads != 1 || b.FDs < 5 || b.FDs != p.FDs || diff(b.RSS, p.RSS) > 512<<10 {
		t.Errorf("sleep: BPF %+v, /proc %+v (of %d read): want 1 thread, stdio and 2 descriptors more, as /proc has them, the same memory", b, p, len(viaBPF))
	}
	b, p = viaBPF[self], viaProc[self]
	if b.Threads < 2 || b.Threads > p.Threads+2 || b.CPU <= 0 || b.RSS < 1<<20 || b.CPU > p.CPU+time.Second || p.CPU > b.CPU+time.Second ||
		diff(b.RSS, p.RSS) > p.RSS/4 || diff(uint64(b.FDs), uint64(p.FDs)) > 2 {
		t.Errorf("this test: BPF %+v, /proc %+v: want the same counters", b, p)
	}
}

func diff(a, b uint64) uint64 { return max(a, b) - min(a, b) }

// A pid whose start time is not the requested one is another process's:
// it is left out, as is a process that has ended.
func TestBPFReaderLeavesOutOthers(t *testing.T) {
	r := bpfReader(t, 0)
	sleep := startSleep(t)
	reused := proc.ID{PID: sleep.PID, StartTime: sleep.StartTime + 1}
	got := map[proc.ID]Counters{}
	r.Read([]Request{{ID: reused}}, got)
	if len(got) != 0 {
		t.Errorf("another start time: read %+v, want nothing", got)
	}
	p, _ := os.FindProcess(sleep.PID)
	_ = p.Kill()
	_, _ = p.Wait()
	r.Read([]Request{{ID: sleep}}, got)
	if len(got) != 0 {
		t.Errorf("an ended process: read %+v, want nothing", got)
	}
	if len(r.in) != 1 {
		t.Errorf("the kernel's map holds %d pids, want the one asked for", len(r.in))
	}
}

// Processes the kernel's map has no room for are read from /proc; the
// map follows the requests from one read to the next.
func TestBPFReaderOverflowsToProc(t *testing.T) {
	r := bpfReader(t, 2)
	ids := []proc.ID{startSleep(t), startSleep(t), startSleep(t)}
	var reqs []Request
	for _, id := range ids {
		reqs = append(reqs, Request{ID: id, FDs: true})
	}
	got := map[proc.ID]Counters{}
	r.Read(reqs, got)
	if len(got) != 3 || len(r.in) != 2 {
		t.Fatalf("read %d of 3 with a map of 2 (%d in it)", len(got), len(r.in))
	}
	for id, c := range got {
		if c.FDs < 5 || c.Threads != 1 {
			t.Errorf("pid %d: %+v, want stdio and 2 descriptors more, 1 thread", id.PID, c)
		}
	}
	r.Read(reqs[2:], got)
	if _, ok := got[ids[2]]; len(got) != 1 || !ok || len(r.in) != 1 || !r.in[uint32(ids[2].PID)] {
		t.Errorf("after the requests shrank: read %v, map %v; want only the third", got, r.in)
	}
}

// pcheck's reader loads the iterator at its first read, where it loads.
func TestAutoReaderPicksBPF(t *testing.T) {
	bpfReader(t, 0) // skips (or fails, where required) without BPF
	a := NewAutoReader("", slog.New(slog.DiscardHandler))
	defer a.Close()
	if a.r != nil {
		t.Fatal("a reader was opened before the first read")
	}
	sleep := startSleep(t)
	got := map[proc.ID]Counters{}
	a.Read([]Request{{ID: sleep}}, got)
	if _, ok := a.r.(*BPFReader); !ok || got[sleep].Threads != 1 {
		t.Errorf("reader %T read %+v: want the BPF iterator's counters of sleep", a.r, got)
	}
}
