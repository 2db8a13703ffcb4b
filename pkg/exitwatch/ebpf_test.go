// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

const ebpfTestDeadline = 30 * time.Second

// loadEBPFForTest loads the ebpf backend or skips (fails in CI) with why it
// cannot. ringBytes 0 keeps the compiled ring size; the reader is not
// started, so the caller decides when events flow.
func loadEBPFForTest(t *testing.T, ringBytes uint32) *ebpfWatcher {
	t.Helper()
	return loadEBPFWith(t, Options{}, ringBytes)
}

func loadEBPFWith(t *testing.T, opt Options, ringBytes uint32) *ebpfWatcher {
	t.Helper()
	testpriv.Root(t)
	if err := probeEBPF(Options{}); errors.Is(err, ErrNotSupported) {
		testpriv.Unavailable(t, "BPF: "+err.Error())
	} else if err != nil {
		t.Fatalf("probing BPF: %v", err)
	}
	w, err := loadEBPF(opt, newSinkLog(), ringBytes)
	if err != nil {
		t.Fatalf("loading the ebpf backend: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// startProcess starts path with args and returns its identity; the process
// is killed and reaped when the test ends.
func startProcess(t *testing.T, path string, args ...string) (*exec.Cmd, proc.ID) {
	t.Helper()
	cmd := exec.Command(path, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	id, err := readID("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatalf("reading the identity of %s: %v", path, err)
	}
	return cmd, id
}

// killAndReap SIGKILLs cmd and waits for it, so its exit has happened.
func killAndReap(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %d: %v", cmd.Process.Pid, err)
	}
	_ = cmd.Wait()
}

// nextEvent returns the next event w's sink got, failing the test at the
// deadline.
func nextEvent(t *testing.T, w *ebpfWatcher) Event {
	t.Helper()
	ev, ok := sinkOf(w).next(time.After(ebpfTestDeadline), w.Done())
	if !ok {
		t.Fatal("no event before the deadline, or the backend ended")
	}
	return ev
}

// sinkOf is the sinkLog loadEBPFWith gave w.
func sinkOf(w *ebpfWatcher) *sinkLog { return w.outlet.sink.(*sinkLog) }

// copyExecutable copies src into dir under name, so it is a file of its own
// (another inode) that runs the same program.
func copyExecutable(t *testing.T, src, dir, name string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, name)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestEBPFReportsExecOfWatchedExecutable(t *testing.T) {
	w := loadEBPFForTest(t, 0)
	w.start()
	dir := t.TempDir()
	watched := copyExecutable(t, "/usr/bin/sleep", dir, "watched-sleep")
	other := copyExecutable(t, "/usr/bin/sleep", dir, "other-sleep")
	if err := w.WatchExec(watched); err != nil {
		t.Fatal(err)
	}
	if err := w.WatchExec(other); err != nil {
		t.Fatal(err)
	}

	// The same program from another file is not watched: no event. The
	// events are ordered, so the watched one coming first proves it.
	if err := exec.Command("/usr/bin/sleep", "0").Run(); err != nil {
		t.Fatal(err)
	}
	_, id := startProcess(t, watched, "1000")
	ev := nextEvent(t, w)
	want := Event{Kind: Exec, ID: id, Exe: watched, PPID: os.Getpid(), At: ev.At}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("got %+v, want %+v (the start time must be /proc's)", ev, want)
	}

	// Unwatched, the first copy is quiet too.
	if err := w.UnwatchExec(watched); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(watched, "0").Run(); err != nil {
		t.Fatal(err)
	}
	_, otherID := startProcess(t, other, "1000")
	if ev := nextEvent(t, w); ev.ID != otherID || ev.Exe != other {
		t.Fatalf("after UnwatchExec got %+v, want the exec of %s as %v", ev, other, otherID)
	}
}

func TestEBPFIgnoresExitOfReusedPID(t *testing.T) {
	w := loadEBPFForTest(t, 0)
	w.start()

	// The map holds the pid with a start time of some earlier process, as
	// after pid reuse. Inserted directly: Watch would notice the mismatch
	// in /proc and report at once, before the kernel had a say.
	reused, id := startProcess(t, "/usr/bin/sleep", "1000")
	earlier := id.StartTime - 1
	stale := ebpfTracked{StartTime: earlier, RootStart: earlier, Root: uint32(id.PID), Flags: uint32(ebpfProcFlagPROC_WATCHED)}
	if err := w.objs.Procs.Put(uint32(id.PID), stale); err != nil {
		t.Fatal(err)
	}
	killAndReap(t, reused)

	sentinel, sentinelID := startProcess(t, "/usr/bin/sleep", "1000")
	if err := w.Watch(sentinelID); err != nil {
		t.Fatal(err)
	}
	killAndReap(t, sentinel)
	if ev := nextEvent(t, w); ev.ID != sentinelID {
		t.Fatalf("first event %+v, want the exit of %v", ev, sentinelID)
	}
	if got := w.Stats().Received; got != 1 {
		t.Errorf("%d events crossed the ring buffer, want only the watched one", got)
	}
	// The entry named a process that is gone: the kernel drops it without
	// a report.
	var left ebpfTracked
	if err := w.objs.Procs.Lookup(uint32(id.PID), &left); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("the mismatched entry is still in the map (%+v, %v); the kernel must drop it", left, err)
	}
}

func TestEBPFRescansWhenEventsAreLost(t *testing.T) {
	// One page of ring holds ~70 events; nobody reads it until all exits
	// have happened, so most are dropped.
	w := loadEBPFForTest(t, uint32(os.Getpagesize()))
	const n = 200
	cmds := make([]*exec.Cmd, n)
	ids := map[proc.ID]bool{}
	for i := range cmds {
		var id proc.ID
		cmds[i], id = startProcess(t, "/usr/bin/sleep", "1000")
		if err := w.Watch(id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	for _, cmd := range cmds {
		killAndReap(t, cmd)
	}
	lost := w.lost()
	if lost == 0 {
		t.Fatalf("no event lost with a %d-byte ring and %d exits; the test proves nothing", os.Getpagesize(), n)
	}

	w.start()
	seen := map[proc.ID]bool{}
	var unknown uint64
	for len(seen) < n {
		ev := nextEvent(t, w)
		if ev.Kind != Exit || !ids[ev.ID] || seen[ev.ID] {
			t.Fatalf("unexpected or repeated event %+v", ev)
		}
		seen[ev.ID] = true
		switch {
		case !ev.Known:
			unknown++ // found by the rescan: already reaped
		case ev.Signal != int(syscall.SIGKILL):
			t.Errorf("event %+v, want SIGKILL", ev)
		}
	}
	if unknown != lost {
		t.Errorf("%d exits found by the rescan, want one per lost event (%d)", unknown, lost)
	}
	if s := w.Stats(); s.Lost != lost || s.Rescans == 0 {
		t.Errorf("stats %+v, want %d lost and a rescan", s, lost)
	}
}

// A time namespace that shifts boot time makes /proc's start times
// disagree with the kernel's: the ebpf backend must say it cannot work.
func TestEBPFRefusesABoottimeOffset(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(root+"/self", 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(root+"/self/timens_offsets", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("monotonic           0         0\nboottime            0         0\n")
	if err := sameBoottimeAsKernel(root); err != nil {
		t.Fatalf("no offset: %v", err)
	}
	write("monotonic        3600         0\nboottime         86400         0\n")
	if err := sameBoottimeAsKernel(root); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("a boottime offset: %v, want ErrNotSupported", err)
	}
}

// On a host with 5,000 unrelated processes, a ring buffer too small for the
// deaths loses most of their events: the rescan still reports every death
// once, the trees still hold every leftover worker (the kernel's map is not
// the ring), and the users are told to resync.
func TestEBPFLostEventsOnABusyHost(t *testing.T) {
	testpriv.Root(t)
	testproc.Crowd(t, 5000)
	w := loadEBPFWith(t, testOptions(t), uint32(os.Getpagesize()))
	const n = 100
	masters := make([]*testproc.Proc, n)
	workers := map[proc.ID]proc.ID{}
	for i := range masters {
		masters[i] = testproc.Forker(t, testproc.Binary(t))
		if err := w.Watch(masters[i].ID); err != nil {
			t.Fatal(err)
		}
		workers[masters[i].ID] = masters[i].Fork()
	}
	for _, m := range masters {
		m.Signal(syscall.SIGKILL)
	}
	for _, m := range masters {
		m.WaitFor("killed", func(s procfs.ProcStat) bool { return s.State == "Z" })
	}
	lost := w.lost()
	if lost == 0 {
		t.Fatalf("no event lost with a %d-byte ring and %d exits; the test proves nothing", os.Getpagesize(), n)
	}
	w.start()
	seen := map[proc.ID]bool{}
	for len(seen) < n {
		ev := nextEvent(t, w)
		if _, ok := workers[ev.ID]; ev.Kind != Exit || !ok || seen[ev.ID] {
			t.Fatalf("unexpected or repeated event %+v", ev)
		}
		seen[ev.ID] = true
	}
	// The rescan reports the deaths it finds before it tells the resync:
	// the last exit can come a moment before it.
	for deadline := time.Now().Add(10 * time.Second); sinkOf(w).resyncCount() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if sinkOf(w).resyncCount() == 0 {
		t.Error("events were lost and nobody was told to resync within 10 s of the last exit")
	}
	for master, worker := range workers {
		tree, err := w.Tree(master)
		if err != nil || len(tree) != 1 || tree[0].ID != worker {
			t.Errorf("tree of the dead %v: %+v, %v; want its worker %v", master, tree, err, worker)
		}
	}
}
