// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/probe"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/sockdiag"
)

// fakeProbes answers each block's probes: failing ports fail. It counts
// the probes of each port.
type fakeProbes struct {
	mu      sync.Mutex
	failing map[int]bool
	count   map[int]int
	more    chan struct{}
}

func newFakeProbes() *fakeProbes {
	return &fakeProbes{failing: map[int]bool{}, count: map[int]int{}, more: make(chan struct{}, 1)}
}

func (f *fakeProbes) probe(_ context.Context, c pfile.Check) error {
	f.mu.Lock()
	f.count[c.Port]++
	fail := f.failing[c.Port]
	f.mu.Unlock()
	select {
	case f.more <- struct{}{}:
	default:
	}
	if fail {
		return errors.New("no answer")
	}
	return nil
}

func (f *fakeProbes) fail(port int, on bool) {
	f.mu.Lock()
	f.failing[port] = on
	f.mu.Unlock()
}

func (f *fakeProbes) probes(port int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[port]
}

// waitProbes waits until port has been probed n times in all.
func (f *fakeProbes) waitProbes(t *testing.T, port, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for f.probes(port) < n {
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("port %d probed %d times, want %d", port, f.probes(port), n)
		}
	}
}

// fastCheck is a block with a short schedule: the pfile's 10 s minimum is
// the language's rule, not the supervisor's.
func fastCheck(kind pfile.Kind, port int, stopAfter, actionError bool) pfile.Check {
	return pfile.Check{Kind: kind, Block: fmt.Sprintf("_bi_%v_%d", kind, port), Port: port, Host: "127.0.0.1",
		Interval: 10 * time.Millisecond, Duration: 50 * time.Millisecond, Timeout: 10 * time.Millisecond,
		StopAfterDetect: stopAfter, ActionError: actionError}
}

// realClock: stall checks measure durations on the harness clock, which
// these tests let run.
type realClock struct{ start time.Time }

func (c realClock) Now() time.Duration { return time.Since(c.start) }

func newStallHarness(t *testing.T, checks ...pfile.Check) (*harness, *fakeProbes) {
	t.Helper()
	probes := newFakeProbes()
	h := newHarness(t, "ok", func(c *pfile.Service) { c.Checks = checks })
	h.svc.d.Probe = probes.probe
	h.svc.d.Clock = realClock{time.Now()}
	h.running(t)
	return h, probes
}

func TestStallKillsAndRecovers(t *testing.T) {
	for _, tc := range []struct {
		kind         pfile.Kind
		find, reason string
	}{
		{pfile.KindHTTP, "Find Web Server Stall: pid = 1001 : port = 8080", "stall"},
		{pfile.KindHTTPS, "Find Web Server Stall: pid = 1001 : port = 8080", "stall"},
		{pfile.KindTCP, "Find Socket Service Stall: pid = 1001 : port = 8080", "socket"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			h, probes := newStallHarness(t, fastCheck(tc.kind, 8080, false, true))
			h.run(t)
			h.waitState(t, Up)
			probes.waitProbes(t, 8080, 2) // answering: no stall
			probes.fail(8080, true)
			h.log.waitLines(t, 0, tc.find, "Killed Process: pid= 1001",
				"Process ['web',pid=1001] Down", "Process ['web',pid=1001] killed by signal 9 (SIGKILL), sent by pcheck (stall check)",
				"Try to restart ('web')", "('web',pid=1002) Up")
			env, _ := os.ReadFile(h.envLog)
			if want := tc.reason + " 1001 1 pcheck 9\n"; string(env) != want {
				t.Fatalf("restart script saw %q, want %q", env, want)
			}
		})
	}
}

func TestSlowButAnsweringServiceIsNotKilled(t *testing.T) {
	// A duration of 1 s: a run of one failed probe outlasts it only on a
	// host stalled for a second, while the runs span more than twice it
	// (a stall timed from the first failure, not the run's, shows).
	check := fastCheck(pfile.KindHTTP, 8080, false, false)
	check.Duration = time.Second
	h, probes := newStallHarness(t, check)
	h.run(t)
	h.waitState(t, Up)
	h.log.waitLines(t, 0, "Running service adopted ('web',pid=1001)")
	// Fail in short runs, each shorter than the duration: never a stall.
	for first := time.Now(); time.Since(first) < 2*check.Duration+check.Duration/2; {
		probes.fail(8080, true)
		probes.waitProbes(t, 8080, probes.probes(8080)+1)
		probes.fail(8080, false)
		probes.waitProbes(t, 8080, probes.probes(8080)+2)
	}
	if got := h.log.all(); len(got) != 1 {
		t.Fatalf("logged %q for a service that kept answering", got)
	}
}

// error 1 stops a block after its first detection; another block goes on.
func TestStopAfterFirstDetection(t *testing.T) {
	h, probes := newStallHarness(t, fastCheck(pfile.KindHTTP, 8080, true, true), fastCheck(pfile.KindTCP, 9090, false, true))
	h.run(t)
	h.waitState(t, Up)
	probes.fail(8080, true)
	h.log.waitLines(t, 0, "Find Web Server Stall: pid = 1001 : port = 8080", "('web',pid=1002) Up")
	before := probes.probes(8080)
	// The sentinel block probes for many stall durations: the stopped
	// block would have found a second stall meanwhile.
	probes.waitProbes(t, 9090, probes.probes(9090)+30)
	if after := probes.probes(8080); after != before {
		t.Fatalf("the stopped block probed %d more times", after-before)
	}
	for _, l := range h.log.all() {
		if l == "('web',pid=1003) Up" {
			t.Fatal("a second stall was acted on")
		}
	}
	if st := h.svc.Checks(); !st[0].Stopped || st[1].Stopped {
		t.Fatalf("check status %+v: want the first stopped, the second running", st)
	}
	// padmin start: the stopped block checks again.
	probes.fail(8080, false)
	if err := h.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	probes.waitProbes(t, 8080, before+2)
	if st := h.svc.Checks(); st[0].Stopped {
		t.Fatal("the block is still marked stopped after padmin start")
	}
}

func TestKillFailureRunsRetryOverAction(t *testing.T) {
	h, probes := newStallHarness(t, fastCheck(pfile.KindHTTP, 8080, false, true))
	h.procs.unkillable = true
	h.run(t)
	h.waitState(t, Up)
	probes.fail(8080, true)
	h.log.waitLines(t, 0, "Find Web Server Stall: pid = 1001 : port = 8080",
		"Can not killed Process: pid= 1001", "Retry over ('web') action=continue")
	h.waitState(t, RetryOver)
}

// Guide 3.2: a kill that failed stops the block's stall checks first; with
// PS_ACTION error 0 nothing more is done, and the service stays Up, watched
// for its death, with no second stall acted on.
func TestKillFailureWithActionErrorZeroStopsChecking(t *testing.T) {
	h, probes := newStallHarness(t, fastCheck(pfile.KindHTTP, 8080, false, false), fastCheck(pfile.KindTCP, 9090, false, false))
	h.procs.unkillable = true
	h.run(t)
	h.waitState(t, Up)
	probes.fail(8080, true)
	h.log.waitLines(t, 0, "Can not killed Process: pid= 1001")
	h.waitState(t, Up)
	// A round the stopped runner had begun before the kill may still land:
	// let the other block run a few rounds first.
	probes.waitProbes(t, 9090, probes.probes(9090)+5)
	before := probes.probes(8080)
	// The other block goes on probing for many stall durations; the
	// stopped one would have found (and acted on) a second stall by then.
	probes.waitProbes(t, 9090, probes.probes(9090)+30)
	if after := probes.probes(8080); after != before {
		t.Fatalf("the block whose kill failed probed %d more times", after-before)
	}
	n := 0
	for _, l := range h.log.all() {
		if l == "Retry over ('web') action=continue" {
			t.Fatal("retry over with PS_ACTION error 0")
		}
		if l == "Can not killed Process: pid= 1001" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d failed kills logged, want 1", n)
	}
	if st := h.svc.Checks(); !st[0].Stopped || st[1].Stopped {
		t.Fatalf("check status %+v: want the first stopped, the second running", st)
	}
	if h.svc.State() != Up {
		t.Fatalf("state %v, want Up", h.svc.State())
	}
}

// A reload (or pcheck's stop) while a stall kill waits does not turn it
// into a failed kill: the kill finishes, nothing runs retry_over_action,
// and pcheck is not asked to exit (no false failover).
func TestCancelledStallKillIsNoFailedKill(t *testing.T) {
	h, probes := newStallHarness(t, fastCheck(pfile.KindHTTP, 8080, false, true))
	h.svc.cfg.RetryOverAction = pfile.ActionExit
	h.procs.gate, h.procs.entered = make(chan struct{}), make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { h.svc.Run(ctx); close(ended) }()
	t.Cleanup(func() { cancel(); <-ended })
	h.waitState(t, Up)
	probes.fail(8080, true)
	select {
	case <-h.procs.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the stall kill never started")
	}
	cancel()            // the reload replaces this supervisor mid-kill
	close(h.procs.gate) // SIGKILL takes effect
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the supervisor did not end after its kill")
	}
	lines := h.log.all()
	if !slices.Contains(lines, "Killed Process: pid= 1001") {
		t.Fatalf("no Killed line; log:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "Can not killed") || strings.HasPrefix(l, "Retry over") {
			t.Fatalf("a cancelled kill was taken for a failed one: %q", l)
		}
	}
	select {
	case code := <-h.exits:
		t.Fatalf("pcheck asked to exit %d", code)
	default:
	}
	if alive, _ := h.procs.Alive(proc.ID{PID: 1001, StartTime: 1}); alive {
		t.Fatal("the stalled process was never killed")
	}
}

// A block is starting from Up until its first answer, then ok, then
// failing since its first failed round; the starvation evidence is asked
// about the service's own processes.
func TestCheckStatusStartingOKFailing(t *testing.T) {
	c := fastCheck(pfile.KindHTTP, 8080, false, false)
	c.Duration = time.Hour // no stall in this test
	h, probes := newStallHarness(t, c)
	asked := make(chan []int, 100)
	h.svc.d.Starvation = func(pids func() []int) func() probe.Judge {
		return func() probe.Judge {
			asked <- pids()
			return func(time.Duration) (string, bool) { return "", false }
		}
	}
	state := func() (CheckStatus, string) {
		st := h.svc.Checks()[0]
		return st, st.State(h.svc.State() == Up)
	}
	probes.fail(8080, true)
	if _, s := state(); s != CheckIdle {
		t.Fatalf("before Up: %s, want idle", s)
	}
	h.run(t)
	h.waitState(t, Up)
	probes.waitProbes(t, 8080, 3)
	if st, s := state(); s != CheckStarting || st.OK {
		t.Fatalf("failing since Up: %s %+v, want starting", s, st)
	}
	if pids := waitFor(t, asked, "starvation evidence asked for"); len(pids) != 1 || pids[0] != 1001 {
		t.Fatalf("starvation evidence about pids %v, want the service's 1001", pids)
	}
	probes.fail(8080, false)
	probes.waitProbes(t, 8080, probes.probes(8080)+2)
	if st, s := state(); s != CheckOK || !st.FailingSince.IsZero() {
		t.Fatalf("answering: %s %+v, want ok", s, st)
	}
	before := time.Now()
	probes.fail(8080, true)
	probes.waitProbes(t, 8080, probes.probes(8080)+2)
	st, s := state()
	if s != CheckFailing || st.FailingSince.Before(before.Add(-time.Second)) || st.FailingSince.After(time.Now()) {
		t.Fatalf("failing: %s since %v (failure began after %v), want failing since then", s, st.FailingSince, before)
	}
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A listen check that cannot look where the service listens (its network
// namespace could not be entered) passes the round and says so once: the
// service is never killed for it.
func TestListenCheckSkippedNeverKills(t *testing.T) {
	c := fastCheck(pfile.KindHTTP, 8080, false, false)
	c.ListenCheck = true
	probes := newFakeProbes()
	h := newHarness(t, "ok", func(s *pfile.Service) { s.Checks = []pfile.Check{c} })
	h.svc.d.Probe = probes.probe
	h.svc.d.Clock = realClock{time.Now()}
	var calls, skippedLines atomic.Int32
	h.svc.d.ListenCheck = func(int, []int) (int, int, error) {
		calls.Add(1)
		return -1, -1, fmt.Errorf("port 8080: %w: entering the network namespace of pid 1001: permission denied", sockdiag.ErrSkipped)
	}
	h.svc.d.Slog = slog.New(countHandler{msg: "listen check skipped", n: &skippedLines})
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	probes.waitProbes(t, 8080, 20) // 20 rounds, ten durations
	if calls.Load() < 10 {
		t.Fatalf("listen check ran %d times in 20 rounds", calls.Load())
	}
	if got := h.log.all(); len(got) != 1 {
		t.Fatalf("logged %q: a skipped listen check must not stall the service", got)
	}
	if n := skippedLines.Load(); n != 1 {
		t.Fatalf("%d 'listen check skipped' lines, want 1", n)
	}
}

// countHandler counts the records with message msg.
type countHandler struct {
	msg string
	n   *atomic.Int32
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }
