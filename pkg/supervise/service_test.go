// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/reboot"
)

// fakeProcs is a process table whose service is "running" while its
// marker file exists: restart scripts in these tests create the marker.
// Each start gets a new identity.
type fakeProcs struct {
	marker string
	perPID bool // Among answers (as for an executable's matcher)
	mu     sync.Mutex
	next   int
	finds  int // full scans
	amongs int // looks among the events' processes
	cur    *proc.Match
	killed []proc.ID
	// granted is the last Grant; with grantOnly the running process is
	// the service's only when granted (it runs as another user).
	granted   []proc.ID
	grantOnly bool
	// unkillable processes survive SIGKILL; onDeath hears of a kill.
	unkillable bool
	onDeath    func(exitwatch.Event)
	// gate, when set, holds a SIGKILL until it is closed; a kill whose ctx
	// ends first reports every target as a survivor, as proc.Kill once
	// did. entered hears that a kill waits at the gate.
	gate    chan struct{}
	entered chan struct{}
	// table, when set, kills for real (the running process is a real
	// child of the test's); its exit comes from the test.
	table *proc.Table
	// opts are the options of every Kill, in order.
	opts []proc.KillOptions
}

func (f *fakeProcs) Find() ([]proc.Match, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds++
	return f.currentLocked(), nil
}

func (f *fakeProcs) FindSince(time.Time) ([]proc.Match, error) { return f.Find() }

// Read gives a script's pid an identity of its own.
func (f *fakeProcs) Read(pid int) (proc.Process, error) {
	return proc.Process{ID: proc.ID{PID: pid, StartTime: 1}}, nil
}

func (f *fakeProcs) Admits(string) bool { return true }

// Group is empty: the fake's processes are the marker's.
func (f *fakeProcs) Group(proc.ID) ([]proc.ID, error) { return nil, nil }

func (f *fakeProcs) currentLocked() []proc.Match {
	if _, err := os.Stat(f.marker); err != nil {
		f.cur = nil
		return nil
	}
	if f.cur == nil {
		f.next++
		f.cur = &proc.Match{Process: proc.Process{ID: proc.ID{PID: 1000 + f.next, StartTime: uint64(f.next)}}}
	}
	if f.grantOnly && !slices.Contains(f.granted, f.cur.ID) {
		return nil
	}
	return []proc.Match{*f.cur}
}

// die makes the running process vanish, as a kill would.
func (f *fakeProcs) die() proc.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.cur.ID
	f.cur = nil
	os.Remove(f.marker)
	return id
}

// Kill records the kill; a SIGKILL to the running process kills it (and
// tells onDeath), unless it is unkillable.
func (f *fakeProcs) Kill(ctx context.Context, ids []proc.ID, o proc.KillOptions) ([]proc.ID, error) {
	f.mu.Lock()
	f.killed = append(f.killed, ids...)
	f.opts = append(f.opts, o)
	if f.table != nil {
		f.mu.Unlock()
		return f.killForReal(ctx, ids, o)
	}
	unkillable, onDeath, gate := f.unkillable, f.onDeath, f.gate
	hit := o.Signal == syscall.SIGKILL && f.cur != nil && slices.Contains(ids, f.cur.ID)
	f.mu.Unlock()
	if !hit {
		return nil, nil
	}
	if gate != nil {
		f.entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return ids, ctx.Err()
		}
	}
	if unkillable {
		return ids, errors.New("operation not permitted")
	}
	id := f.die()
	onDeath(exitwatch.Event{Kind: exitwatch.Exit, ID: id, Known: true, Signal: 9})
	return nil, nil
}

func (f *fakeProcs) Grant(ids []proc.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.granted = slices.Clone(ids)
}

func (f *fakeProcs) WaitExited(context.Context, proc.ID) error { return nil }

func (f *fakeProcs) Alive(id proc.ID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur != nil && f.cur.ID == id, nil
}

// Among answers only with perPID (else supervisors scan), from the same
// state as Find.
func (f *fakeProcs) Among([]proc.Process) ([]proc.Match, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.perPID {
		return nil, false, nil
	}
	f.amongs++
	return f.currentLocked(), true, nil
}

// fakeWatcher keeps no trees, like the pidfd and proc backends, unless
// trees is set (ebpf, netlink: every tree empty).
type fakeWatcher struct {
	mu      sync.Mutex
	watched map[proc.ID]bool
	trees   bool
	// tree, if set, answers Tree.
	tree func(root proc.ID) []proc.Process
	// onWatch, if set, hears each Watch first.
	onWatch func(proc.Match)
}

func (w *fakeWatcher) Watch(m proc.Match) {
	if w.onWatch != nil {
		w.onWatch(m)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watched[m.ID] = true
}

func (w *fakeWatcher) Follow(proc.ID, int) {}

func (w *fakeWatcher) Unwatch(id proc.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.watched, id)
}

func (w *fakeWatcher) Tree(root proc.ID) ([]proc.Process, bool) {
	if w.tree != nil && w.trees {
		return w.tree(root), true
	}
	return nil, w.trees
}
func (w *fakeWatcher) KeepsTrees() bool { return w.trees }

func (w *fakeWatcher) is(id proc.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watched[id]
}

// recorder keeps the catalogue lines in order and lets a test wait for one.
type recorder struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func (r *recorder) Log(m msg.Message) {
	r.mu.Lock()
	r.lines = append(r.lines, m.Text)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// waitLines waits until want stands in the log, in this order, after the
// first `from` lines; it returns the index after the last one found.
func (r *recorder) waitLines(t *testing.T, from int, want ...string) int {
	t.Helper()
	deadline := time.After(90 * time.Second) // past restart_timeout: a slow attempt still ends
	for {
		lines := r.all()
		i, j := from, 0
		for ; i < len(lines) && j < len(want); i++ {
			if lines[i] == want[j] {
				j++
			}
		}
		if j == len(want) {
			return i
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("log lacks %q (in order) after line %d; have:\n%s", want, from, strings.Join(lines, "\n"))
		}
	}
}

// fakeClock is moved by hand; its timers (After) fire when it passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []fakeTimer
}

type fakeTimer struct {
	at, d time.Duration
	c     chan time.Time
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- time.Time{}
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now + d, d: d, c: ch})
	return ch
}

// waitTimer waits until a timer is pending and returns how long it was
// set for, and which one it is (the oldest pending).
func (c *fakeClock) waitTimer(t *testing.T) time.Duration {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		if len(c.timers) > 0 {
			d := c.timers[0].d
			c.mu.Unlock()
			return d
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no timer was set")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (c *fakeClock) pendingTimers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *fakeClock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at <= c.now {
			tm.c <- time.Time{}
		} else {
			kept = append(kept, tm)
		}
	}
	c.timers = kept
	c.mu.Unlock()
}

type harness struct {
	svc    *Service
	procs  *fakeProcs
	watch  *fakeWatcher
	log    *recorder
	clock  *fakeClock
	exits  chan int
	envLog string
}

// newHarness supervises a service whose restart script creates the marker
// (script "ok") or fails (script "fail").
func newHarness(t *testing.T, script string, edit func(*pfile.Service)) *harness {
	t.Helper()
	dir := t.TempDir()
	marker := filepath.Join(dir, "running")
	envLog := filepath.Join(dir, "env")
	body := fmt.Sprintf("echo \"$PWATCH_REASON $PWATCH_PID $PWATCH_ATTEMPT${PWATCH_CAUSE:+ $PWATCH_CAUSE}${PWATCH_SIGNAL:+ $PWATCH_SIGNAL}${PWATCH_EXIT_STATUS:+ $PWATCH_EXIT_STATUS}\" >> %s\n", envLog)
	body += fmt.Sprintf("echo \"$PWATCH_ATTEMPTS_LEFT\" >> %s.left\n", envLog)
	switch {
	case script == "ok":
		body += "touch " + marker + "\n"
	case strings.HasPrefix(script, "fail:"):
		// fail:N fails N times, then works.
		body += fmt.Sprintf("[ $(wc -l < %s) -gt %s ] || exit 1\ntouch %s\n", envLog, strings.TrimPrefix(script, "fail:"), marker)
	default:
		body += "exit 1\n"
	}
	cfg := &pfile.Service{
		Name: "web", Process: "/usr/sbin/web", MinCount: 1,
		RestartScript: []string{writeScript(t, body)}, RestartTimeout: time.Minute, // real time: a loaded host may take seconds to run a script
		RetryCount: 3, Grace: time.Hour, KillTimeout: time.Second,
		RetryOverAction: pfile.ActionContinue, StartOnLoad: true,
	}
	if edit != nil {
		edit(cfg)
	}
	h := &harness{
		procs: &fakeProcs{marker: marker}, watch: &fakeWatcher{watched: map[proc.ID]bool{}},
		log: &recorder{more: make(chan struct{}, 1)}, clock: &fakeClock{}, exits: make(chan int, 4), envLog: envLog,
	}
	h.procs.onDeath = func(ev exitwatch.Event) { h.svc.Exited(ev) }
	h.svc = New(cfg, Deps{
		Processes: h.procs, Watcher: h.watch, Log: h.log, Clock: h.clock,
		Slog:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Exit:         func(code int) { h.exits <- code },
		ScanInterval: 10 * time.Millisecond, IdleScanInterval: 10 * time.Millisecond,
	})
	return h
}

func (h *harness) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (h *harness) running(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(h.procs.marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) waitFinds(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.procs.mu.Lock()
		finds := h.procs.finds
		h.procs.mu.Unlock()
		if finds >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service looked for its processes %d times, want %d", finds, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) kill(sig int) proc.ID {
	id := h.procs.die()
	h.svc.Exited(exitwatch.Event{Kind: exitwatch.Exit, ID: id, Known: true, Signal: sig})
	return id
}

func (h *harness) waitState(t *testing.T, want State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.svc.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %v, want %v", h.svc.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAdoptsARunningServiceWithoutRestart(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	id := h.svc.Status()
	if len(id.PIDs) != 1 || !h.watch.is(proc.ID{PID: id.PIDs[0], StartTime: 1}) {
		t.Fatalf("status %+v: the running process is not watched", id)
	}
	// Adoption has a syslog line of its own, and nothing more: no restart.
	h.log.waitLines(t, 0, "Running service adopted ('web',pid=1001)")
	if got := h.log.all(); len(got) != 1 {
		t.Fatalf("adoption logged %q, want only the adoption", got)
	}
}

func TestDeathIsRecovered(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	old := h.kill(9)
	h.log.waitLines(t, 0,
		fmt.Sprintf("Process ['web',pid=%d] Down", old.PID),
		fmt.Sprintf("Process ['web',pid=%d] killed by signal 9 (SIGKILL)", old.PID),
		"Try to restart ('web')",
		"('web',pid=1002) Up")
	h.waitState(t, Up)
	if !h.watch.is(proc.ID{PID: 1002, StartTime: 2}) || h.watch.is(old) {
		t.Fatal("the new process is not watched, or the dead one still is")
	}
	env, _ := os.ReadFile(h.envLog)
	if got, want := string(env), fmt.Sprintf("down %d 1 signal 9\n", old.PID); got != want {
		t.Fatalf("script saw PWATCH_REASON PID ATTEMPT = %q, want %q", got, want)
	}
	if st := h.svc.Status(); st.Restarts != 1 {
		t.Fatalf("restarts within grace = %d, want 1", st.Restarts)
	}
}

// A service its restart script brought back rests holding nothing of the
// recovery: not the ended job's cancel (which kept the attempt's and the
// recovery's contexts alive), not the inputs it took (a job's result) in
// its queues' arrays. At a thousand services that was a KiB each.
func TestARestingServiceKeepsNothingOfItsRecovery(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.run(t)
	h.log.waitLines(t, 0, "Try to restart ('web')", "('web',pid=1001) Up")
	deadline := time.Now().Add(time.Minute)
	for !h.svc.AtRest() {
		if time.Now().After(deadline) {
			t.Fatalf("step %q: never at rest", h.svc.Status().Step)
		}
		time.Sleep(time.Millisecond) // polled: the loop says nothing when at rest
	}
	h.svc.mu.Lock()
	defer h.svc.mu.Unlock()
	if h.svc.jobCancel != nil || h.svc.rec != nil || h.svc.pending != nil {
		t.Errorf("at rest: job cancel kept %v, recovery %v, mailbox array of %d", h.svc.jobCancel != nil, h.svc.rec, cap(h.svc.pending))
	}
}

// Where the backend keeps trees, nothing between a death and Up scans
// /proc: the leftovers come from the tree, the restarted service from a
// look among the processes events named.
func TestRecoveryFromEventsScansNothing(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.watch.trees, h.procs.perPID = true, true
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	h.procs.mu.Lock()
	scansAtUp := h.procs.finds
	h.procs.mu.Unlock()
	old := h.kill(9)
	h.log.waitLines(t, 0, fmt.Sprintf("Process ['web',pid=%d] Down", old.PID), "Try to restart ('web')", "('web',pid=1002) Up")
	h.procs.mu.Lock()
	defer h.procs.mu.Unlock()
	if h.procs.finds != scansAtUp || h.procs.amongs == 0 {
		t.Errorf("recovery: %d full scans and %d looks among events, want 0 scans", h.procs.finds-scansAtUp, h.procs.amongs)
	}
}

func TestStartOnLoadStartsAServiceThatIsDown(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.run(t)
	h.log.waitLines(t, 0, "Try to restart ('web')", "('web',pid=1001) Up")
	env, _ := os.ReadFile(h.envLog)
	// pcheck's first start is not a restart: attempt 0, retry_count whole.
	left, _ := os.ReadFile(h.envLog + ".left")
	if string(env) != "start 0 0\n" || string(left) != "3\n" {
		t.Fatalf("script env %q, attempts left %q; want reason start, pid 0, attempt 0, 3 attempts left", env, left)
	}
	if st := h.svc.Status(); st.Restarts != 0 || st.AttemptsLeft != 3 {
		t.Fatalf("after the first start: %d restarts within grace, %d left; want 0 and 3", st.Restarts, st.AttemptsLeft)
	}
}

func TestStartOnLoadNoWaitsForTheService(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) { c.StartOnLoad = false })
	h.run(t)
	// The first look finds nothing, and nothing is started (the script
	// would write envLog); the service is adopted when it appears.
	h.waitFinds(t, 1)
	h.running(t)
	h.log.waitLines(t, 0, "('web',pid=1001) Up")
	if _, err := os.Stat(h.envLog); err == nil {
		t.Fatal("the restart script ran for a start_on_load no service")
	}
}

func TestRetryOverContinueThenStartResets(t *testing.T) {
	h := newHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 2 })
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	h.kill(9)
	h.log.waitLines(t, 0,
		"Try to restart ('web')", "Set pid fail ('web')",
		"Try to restart ('web')", "Set pid fail ('web')",
		"Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
	n := len(h.log.all())
	// padmin start: counters reset, restarted again.
	if err := h.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.log.waitLines(t, n, "Try to restart ('web')", "Set pid fail ('web')", "Try to restart ('web')", "Set pid fail ('web')", "Retry over ('web') action=continue")
}

func TestRetryOverExitAndShutdown(t *testing.T) {
	for action, code := range map[pfile.Action]int{pfile.ActionExit: 3, pfile.ActionShutdown: 0} {
		t.Run(action.String(), func(t *testing.T) {
			h := newHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 1; c.RetryOverAction = action })
			h.run(t)
			h.log.waitLines(t, 0, "Set pid fail ('web')", "Retry over ('web') action="+action.String())
			select {
			case got := <-h.exits:
				if got != code {
					t.Fatalf("exit status %d, want %d", got, code)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("pcheck was not asked to end")
			}
		})
	}
}

func TestAttemptsOutsideGraceAreForgotten(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) { c.RetryCount = 1; c.Grace = time.Minute })
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	h.kill(9)
	h.log.waitLines(t, 0, "Try to restart ('web')", "('web',pid=1002) Up")
	h.waitState(t, Up)
	h.clock.advance(time.Minute) // the one attempt leaves the grace window
	n := len(h.log.all())
	h.kill(9)
	h.log.waitLines(t, n, "Try to restart ('web')", "('web',pid=1003) Up")
	// Within grace, a third death is one too many.
	h.waitState(t, Up)
	n = len(h.log.all())
	h.kill(9)
	h.log.waitLines(t, n, "Retry over ('web') action=continue")
}

func TestStoppedServiceIsNotRestarted(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	id := h.svc.Status().PIDs[0]
	if err := h.svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.svc.State() != Paused || h.watch.is(proc.ID{PID: id, StartTime: 1}) {
		t.Fatalf("after stop: state %v, still watched %v", h.svc.State(), h.watch.is(proc.ID{PID: id, StartTime: 1}))
	}
	// Unwatched but running: status still shows its pid.
	if got := h.svc.Status().PIDs; !slices.Equal(got, []int{id}) {
		t.Fatalf("paused status pids %v, want [%d]", got, id)
	}
	h.kill(9)
	if got := h.svc.Status().PIDs; len(got) != 0 {
		t.Fatalf("paused status pids %v after its process died, want none", got)
	}
	// Resume: the service is down, so start runs the recovery.
	if err := h.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := h.log.waitLines(t, 0, "Try to restart ('web')", "('web',pid=1002) Up")
	for _, l := range h.log.all()[:lines] {
		if strings.Contains(l, "Down") {
			t.Fatalf("a death while paused was acted on: %q", l)
		}
	}
}

// rebootRecorder stands in for the reboot guard and command.
type rebootRecorder struct {
	calls  chan string
	answer error
}

func (r *rebootRecorder) reboot(_ context.Context, service string) error {
	r.calls <- service
	return r.answer
}

func TestRetryOverReboot(t *testing.T) {
	for name, answer := range map[string]error{"allowed": nil, "threshold": fmt.Errorf("guard: %w", reboot.ErrThresholdReached)} {
		t.Run(name, func(t *testing.T) {
			rec := &rebootRecorder{calls: make(chan string, 4), answer: answer}
			h := newHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 1; c.RetryOverAction = pfile.ActionReboot })
			h.svc.d.Reboot = rec.reboot
			h.run(t)
			h.log.waitLines(t, 0, "Set pid fail ('web')", "Retry over ('web') action=reboot")
			select {
			case svc := <-rec.calls:
				if svc != "web" {
					t.Fatalf("reboot for %q", svc)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no reboot asked for")
			}
			if answer != nil {
				h.log.waitLines(t, 0, "Retry over ('web') action=reboot", "Reboot threshold reached ('web')")
			}
			h.waitState(t, RetryOver)
		})
	}
}

// A service not back within recovery_timeout reboots the node although
// retries are left.
func TestRecoveryTimeoutReboots(t *testing.T) {
	rec := &rebootRecorder{calls: make(chan string, 4)}
	h := newHarness(t, "fail", func(c *pfile.Service) {
		c.RetryCount = 1000
		c.RetryInterval = 20 * time.Millisecond
		c.RetryOverAction = pfile.ActionReboot
		c.RecoveryTimeout = 500 * time.Millisecond
	})
	h.svc.d.Reboot = rec.reboot
	h.run(t)
	select {
	case <-rec.calls:
	case <-time.After(20 * time.Second):
		t.Fatal("recovery_timeout did not reboot")
	}
	// The reason goes to syslog, before the reboot is asked for.
	h.log.waitLines(t, 0, "Recovery timeout ('web'): not back within 500ms; rebooting")
	for _, l := range h.log.all() {
		if strings.HasPrefix(l, "Retry over") {
			t.Fatalf("logged %q: the retries were not over", l)
		}
	}
	h.waitState(t, RetryOver)
}

// Commands sent to a supervisor that has stopped (pcheck ending, a reload
// replacing it) are answered at once, not left waiting.
func TestCommandsToAnEndedSupervisorAreRefused(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.running(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.svc.Run(ctx); close(done) }()
	h.waitState(t, Up)
	cancel()
	<-done
	for _, cmd := range []func(context.Context) error{h.svc.Stop, h.svc.Start} {
		// A context that never ends: only the refusal can return.
		if err := cmd(context.Background()); !errors.Is(err, errNotRunning) {
			t.Fatalf("command to an ended supervisor: %v, want errNotRunning", err)
		}
	}
}

// The watchdog's view: idle answers; busy answers while its step is within
// the service's bounds, and not once a step outlasts them.
func TestAnsweringWhileBusyWithinBounds(t *testing.T) {
	h := newHarness(t, "ok", nil)
	if !h.svc.Answering() {
		t.Fatal("an idle supervisor does not answer")
	}
	h.svc.setBusy(true)
	bound := h.svc.cfg.RestartTimeout + stepSlack
	h.clock.advance(bound)
	if !h.svc.Answering() {
		t.Fatal("a supervisor busy within its bound does not answer")
	}
	h.clock.advance(time.Second)
	if h.svc.Answering() {
		t.Fatal("a supervisor stuck past its bound still answers")
	}
	h.svc.progress()
	if !h.svc.Answering() {
		t.Fatal("a supervisor that moved on does not answer")
	}
}

// padmin start during a recovery is answered once queued, not after the
// recovery: the old start waited for the loop, so a padmin whose patience
// ran out got an error while its start still ran later.
func TestStartAnswersWithoutWaitingForARecovery(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) {
		c.RestartScript = []string{writeScript(t, "exec sleep 600\n")}
		c.RestartTimeout = time.Hour
	})
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	h.kill(9)
	h.log.waitLines(t, 0, "Try to restart ('web')") // the script sleeps
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.svc.Start(ctx); err != nil {
		t.Fatalf("start during a recovery: %v", err)
	}
	if err := h.svc.Stop(context.Background()); err != nil { // ends the sleeping recovery
		t.Fatal(err)
	}
}

// A command whose client has gone before it was accepted runs not at all.
func TestStartForAGoneClientDoesNothing(t *testing.T) {
	h := newHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 1 })
	h.run(t)
	h.log.waitLines(t, 0, "Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
	n := len(h.log.all())
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.svc.Start(gone); err == nil {
		t.Fatal("a start for a gone client was accepted")
	}
	// Stop queues behind anything the start left: once it is done, the
	// start would have logged its restart.
	if err := h.svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lines := h.log.all()[n:]; len(lines) != 0 {
		t.Fatalf("the gone client's start ran: %q", lines)
	}
}
