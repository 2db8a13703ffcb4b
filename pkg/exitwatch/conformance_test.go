// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"log/slog"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// allBackends are the backends pwatch ships; with PWATCH_REQUIRE_PRIVILEGED=1
// each must be registered and must open, so none drops out silently.
var allBackends = []string{"ebpf", "netlink", "pidfd", "proc"}

// testPollInterval keeps the polling backends quick in tests.
const testPollInterval = 50 * time.Millisecond

// eventDeadline bounds every wait for an event: generous for a loaded CI
// host; reaching it means the event never came.
const eventDeadline = 30 * time.Second

// conformanceCases is the table every backend passes.
var conformanceCases = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"exit-0", func(t *testing.T, h *harness) { exitCase(t, h, 0) }},
	{"exit-3", func(t *testing.T, h *harness) { exitCase(t, h, 3) }},
	{"sigkill", testSIGKILL},
	{"sigsegv", testSIGSEGV},
	{"zombie-watched-before", testZombieWatchedBefore},
	{"zombie-at-once", testZombieAtOnce},
	{"threads-exit-first", testThreadsExitFirst},
	{"leader-exits-first", testLeaderExitsFirst},
	{"kill-1000", testKill1000},
	{"pid-reuse", testPIDReuse},
	{"exec", testExec},
}

func TestConformance(t *testing.T) {
	testpriv.Root(t)
	names := Backends()
	if testpriv.Required() {
		for _, want := range allBackends {
			if !slices.Contains(names, want) {
				t.Errorf("backend %q is not registered (have %v)", want, names)
			}
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, openHarness(t, name)) })
			}
		})
	}
}

func testOptions(t testing.TB) Options {
	return Options{
		PollInterval: testPollInterval,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// openBackend opens name for a test: a backend the host cannot run is a
// skip with the reason (a failure when privileged tests are required), any
// other error a failure.
func openBackend(t testing.TB, name string) (Watcher, *sinkLog) {
	t.Helper()
	sink := newSinkLog()
	w, err := Open(name, testOptions(t), sink)
	if insidePIDNamespace() && slices.Contains(refusedInPIDNamespace, name) {
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("backend %s opened in a pid namespace (%v); it must refuse", name, err)
		}
		t.Skipf("backend %s is refused in a pid namespace, as it must be: %v", name, err)
	}
	if errors.Is(err, ErrNotSupported) {
		testpriv.Unavailable(t, "backend "+name+": "+err.Error())
	}
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	if w.Name() != name {
		t.Errorf("Open(%q) gave a watcher named %q", name, w.Name())
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return w, sink
}

// harness reads one watcher's events from its sink and keeps every one in
// log, so tests can assert on what arrived, in order.
type harness struct {
	t    *testing.T
	w    Watcher
	sink *sinkLog
	log  []Event
}

func openHarness(t *testing.T, name string) *harness {
	w, sink := openBackend(t, name)
	return &harness{t: t, w: w, sink: sink}
}

func (h *harness) watch(id proc.ID) {
	h.t.Helper()
	if err := h.w.Watch(id); err != nil {
		h.t.Fatalf("Watch(%v): %v", id, err)
	}
}

// waitFor returns the first logged event that matches, reading more events
// until one does.
func (h *harness) waitFor(what string, match func(Event) bool) Event {
	h.t.Helper()
	for _, ev := range h.log {
		if match(ev) {
			return ev
		}
	}
	timeout := time.After(eventDeadline)
	for {
		ev, ok := h.sink.next(timeout, h.w.Done())
		if !ok {
			select {
			case <-h.w.Done():
				h.t.Fatalf("the backend ended while waiting for %s", what)
			default:
				h.t.Fatalf("no %s within %v (events so far: %+v)", what, eventDeadline, h.log)
			}
		}
		h.log = append(h.log, ev)
		if match(ev) {
			return ev
		}
	}
}

func (h *harness) waitExit(id proc.ID) Event {
	h.t.Helper()
	return h.waitFor("exit of "+id.String(), func(ev Event) bool { return ev.Kind == Exit && ev.ID == id })
}

// indexOf is the position in log of id's first exit event, or -1.
func (h *harness) indexOf(id proc.ID) int {
	return slices.IndexFunc(h.log, func(ev Event) bool { return ev.Kind == Exit && ev.ID == id })
}

func (h *harness) exitsOf(id proc.ID) []Event {
	var evs []Event
	for _, ev := range h.log {
		if ev.Kind == Exit && ev.ID == id {
			evs = append(evs, ev)
		}
	}
	return evs
}

// barrier waits until the backend has shown everything caused before it
// was called. Each backend reports what it observes through one FIFO queue,
// in the order it observes it, so an event caused earlier (a duplicate, a
// thread's exit taken for the process's) is received before the exit of a
// process that exits later. Two sentinels, the second started only after
// the first is reported, also cover a backend that observes in batches (a
// poll, an epoll_wait) and orders a batch arbitrarily: the earlier event is
// then at the latest in the first sentinel's batch. No sleeping involved.
func (h *harness) barrier() {
	h.t.Helper()
	for range 2 {
		s := testproc.Exit(h.t, 0)
		h.watch(s.ID)
		s.Trigger()
		h.waitExit(s.ID)
	}
}

// exactlyOne asserts, after a barrier, that id was reported once.
func (h *harness) exactlyOne(id proc.ID) {
	h.t.Helper()
	h.barrier()
	if evs := h.exitsOf(id); len(evs) != 1 {
		h.t.Errorf("%v reported %d times, want once: %+v", id, len(evs), evs)
	}
}

// noExitYet asserts, after a barrier, that id has not been reported.
func (h *harness) noExitYet(id proc.ID, why string) {
	h.t.Helper()
	h.barrier()
	if evs := h.exitsOf(id); len(evs) != 0 {
		h.t.Fatalf("%v reported as exited after %s: %+v", id, why, evs)
	}
}

// checkStatus asserts an exit event's status and that its timestamp lies
// between the moment the exit was caused and now.
func checkStatus(t *testing.T, ev Event, caused time.Duration, status, signal int) {
	t.Helper()
	if !ev.Known || ev.ExitStatus != status || ev.Signal != signal || ev.CoreDumped {
		t.Errorf("event %+v: want known status %d, signal %d, no core", ev, status, signal)
	}
	if now := monotonicNow(); ev.At < caused || ev.At > now {
		t.Errorf("event At %v outside [%v, %v] (CLOCK_MONOTONIC when seen)", ev.At, caused, now)
	}
}

func exitCase(t *testing.T, h *harness, code int) {
	p := testproc.Exit(t, code)
	h.watch(p.ID)
	caused := monotonicNow()
	p.Trigger()
	checkStatus(t, h.waitExit(p.ID), caused, code, 0)
	h.exactlyOne(p.ID)
}

func testSIGKILL(t *testing.T, h *harness) {
	p := testproc.Sleep(t)
	h.watch(p.ID)
	caused := monotonicNow()
	p.Signal(syscall.SIGKILL)
	checkStatus(t, h.waitExit(p.ID), caused, 0, int(syscall.SIGKILL))
	h.exactlyOne(p.ID)
}

func testSIGSEGV(t *testing.T, h *harness) {
	p := testproc.Segfault(t)
	h.watch(p.ID)
	caused := monotonicNow()
	p.Trigger()
	checkStatus(t, h.waitExit(p.ID), caused, 0, int(syscall.SIGSEGV))
	h.exactlyOne(p.ID)
}

func testZombieWatchedBefore(t *testing.T, h *harness) {
	p := testproc.Zombie(t, 5)
	h.watch(p.ID)
	caused := monotonicNow()
	p.Trigger()
	checkStatus(t, h.waitExit(p.ID), caused, 5, 0)
	p.WaitZombie() // the parent really did not reap it
	h.exactlyOne(p.ID)
}

// testZombieAtOnce: an identity that is already a zombie when watched is
// reported by Watch itself, before anything that happens after Watch.
func testZombieAtOnce(t *testing.T, h *harness) {
	p := testproc.Zombie(t, 6)
	p.Trigger()
	p.WaitZombie()
	caused := monotonicNow()
	h.watch(p.ID)
	h.barrier()
	i := h.indexOf(p.ID)
	if i < 0 {
		t.Fatalf("zombie %v not reported; events: %+v", p.ID, h.log)
	}
	if i != 0 {
		t.Errorf("zombie %v reported after the barrier's sentinels, not at once: %+v", p.ID, h.log)
	}
	checkStatus(t, h.log[i], caused, 6, 0)
	if evs := h.exitsOf(p.ID); len(evs) != 1 {
		t.Errorf("zombie reported %d times: %+v", len(evs), evs)
	}
}

func testThreadsExitFirst(t *testing.T, h *harness) {
	p := testproc.Threads(t, 4, 7)
	h.watch(p.ID)
	p.StopThreads()
	if n := p.Threads(); n != 1 {
		t.Fatalf("after its threads exited the helper has %d threads, want 1", n)
	}
	h.noExitYet(p.ID, "its other threads exited")
	caused := monotonicNow()
	p.Trigger()
	checkStatus(t, h.waitExit(p.ID), caused, 7, 0)
	h.exactlyOne(p.ID)
}

// testLeaderExitsFirst: the main thread exits alone; the process lives on
// until another thread calls exit(9).
func testLeaderExitsFirst(t *testing.T, h *harness) {
	p := testproc.Threads(t, 2, 9)
	h.watch(p.ID)
	p.ExitLeader()
	h.noExitYet(p.ID, "its leader thread exited while others run")
	caused := monotonicNow()
	p.Trigger()
	checkStatus(t, h.waitExit(p.ID), caused, 9, 0)
	h.exactlyOne(p.ID)
}

func testKill1000(t *testing.T, h *harness) {
	const n = 1000
	procs := make([]*testproc.Proc, n)
	for i := range procs {
		procs[i] = testproc.Sleep(t)
		h.watch(procs[i].ID)
	}
	caused := monotonicNow()
	for _, p := range procs {
		p.Signal(syscall.SIGKILL)
	}
	want := make(map[proc.ID]bool, n)
	for _, p := range procs {
		want[p.ID] = true
	}
	got := map[proc.ID]int{}
	h.waitFor("1000 exits", func(ev Event) bool {
		if ev.Kind == Exit && want[ev.ID] {
			got[ev.ID]++
			checkStatus(t, ev, caused, 0, int(syscall.SIGKILL))
		}
		return len(got) == n
	})
	h.barrier()
	for _, p := range procs {
		if evs := h.exitsOf(p.ID); len(evs) != 1 {
			t.Errorf("%v reported %d times, want once", p.ID, len(evs))
		}
	}
}

// testPIDReuse: an identity whose pid now holds another process (here: the
// right pid, a start time that is not the live process's) is reported as
// exited at once, status unknown, and the live process's later death is
// never attributed to it.
func testPIDReuse(t *testing.T, h *harness) {
	p := testproc.Sleep(t)
	stale := proc.ID{PID: p.ID.PID, StartTime: p.ID.StartTime - 1}
	h.watch(stale)
	h.barrier()
	if i := h.indexOf(stale); i != 0 {
		t.Fatalf("stale identity %v not reported at once (index %d): %+v", stale, i, h.log)
	}
	if ev := h.log[0]; ev.Known {
		t.Errorf("stale identity reported with a status it cannot know: %+v", ev)
	}
	h.watch(p.ID)
	p.Signal(syscall.SIGKILL)
	h.waitExit(p.ID)
	h.barrier()
	if evs := h.exitsOf(stale); len(evs) != 1 {
		t.Errorf("stale identity %v reported %d times, want once (at Watch): %+v", stale, len(evs), evs)
	}
}

// testExec: a watched executable started anew is reported with the new
// process's identity; one already running when the watch began is not.
// The starts after the watch come in a later tick of /proc's clock (the
// scanning backends tell the running ones by start time).
func testExec(t *testing.T, h *harness) {
	exe := testproc.CopyBinary(t, "pwatch-exec-target")
	// Started before the watch, and done with its exec (Start returns a
	// moment before the kernel reports an exec).
	before := testproc.RunningFrom(t, exe)
	if err := h.w.WatchExec(exe); err != nil {
		t.Fatalf("WatchExec: %v", err)
	}
	nextTick(t)
	isExecOf := func(id proc.ID) func(Event) bool {
		return func(ev Event) bool { return ev.Kind == Exec && ev.ID == id }
	}
	first := testproc.ExitFrom(t, exe, 0)
	ev := h.waitFor("exec of "+first.ID.String(), isExecOf(first.ID))
	if ev.Exe != exe {
		t.Errorf("exec event Exe = %q, want %q", ev.Exe, exe)
	}
	// A second start, begun after the first was reported, is seen by a
	// later observation than any that could have reported the old one.
	second := testproc.ExitFrom(t, exe, 0)
	h.waitFor("exec of "+second.ID.String(), isExecOf(second.ID))
	if slices.ContainsFunc(h.log, isExecOf(before.ID)) {
		t.Errorf("process %v, running before WatchExec, reported as started: %+v", before.ID, h.log)
	}
	for _, ev := range h.log {
		if ev.Kind == Exec && ev.ID != first.ID && ev.ID != second.ID {
			t.Errorf("unexpected exec event %+v", ev)
		}
	}
}

// nextTick waits until /proc's clock (start times, in 10 ms ticks) has
// moved on from now.
func nextTick(t *testing.T) {
	t.Helper()
	now, err := proc.UptimeTicks("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if later, err := proc.UptimeTicks("/proc"); err == nil && later > now {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("/proc/uptime did not move on")
		}
	}
}
