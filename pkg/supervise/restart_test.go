// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
)

// killForReal is Kill through the real process table; the killed process
// is gone from the fake's view once the kill says so.
func (f *fakeProcs) killForReal(ctx context.Context, ids []proc.ID, o proc.KillOptions) ([]proc.ID, error) {
	left, err := f.table.Kill(ctx, ids, o)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil && slices.Contains(ids, f.cur.ID) && !slices.Contains(left, f.cur.ID) {
		f.cur = nil
		os.Remove(f.marker)
	}
	return left, err
}

func (h *harness) scriptRuns(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(h.envLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// padmin restart: the tree is killed, the death logged with its cause, the
// script runs once with reason and cause operator, and the service is Up
// again with its attempts untouched.
func TestOperatorRestartOfAnUpService(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	cmd := msg.CommandExecute("restart", "web")
	if err := h.svc.Restart(context.Background(), RestartRequest{Reason: ReasonOperator, Log: &cmd}); err != nil {
		t.Fatal(err)
	}
	h.log.waitLines(t, 0,
		"Command execute. [restart] pfile='web'",
		"Process ['web',pid=1001] Down",
		"Process ['web',pid=1001] killed by signal 9 (SIGKILL), sent by pcheck (padmin restart)",
		"Try to restart ('web')",
		"('web',pid=1002) Up")
	h.waitState(t, Up)
	if runs := h.scriptRuns(t); !slices.Equal(runs, []string{"operator 1001 0 operator 9"}) {
		t.Fatalf("script runs (REASON PID ATTEMPT CAUSE SIGNAL) %q, want one, for operator", runs)
	}
	if st := h.svc.Status(); st.Restarts != 0 || st.AttemptsLeft != 3 {
		t.Fatalf("after padmin restart: %d restarts within grace, %d left; want 0 and 3", st.Restarts, st.AttemptsLeft)
	}
	h.procs.mu.Lock()
	defer h.procs.mu.Unlock()
	if want := []proc.KillOptions{{Signal: syscall.SIGKILL}}; !slices.Equal(h.procs.opts, want) {
		t.Fatalf("kills %+v, want one SIGKILL at once (no grace)", h.procs.opts)
	}
}

// A broken limit restarts as a restart, not a failed attempt; broken
// again within stable_uptime of pcheck's restart, it counts as one. The
// request's variables reach the script.
func TestLimitRestartCountsOnlyWithinStableUptime(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) { c.StableUptime, c.Grace = time.Hour, 24*time.Hour })
	script := fmt.Sprintf("echo \"$PWATCH_REASON $PWATCH_ATTEMPT $PWATCH_CAUSE $PWATCH_LIMIT\" >> %s\ntouch %s\n", h.envLog, h.procs.marker)
	h.svc.cfg.RestartScript = []string{writeScript(t, script)}
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	limit := RestartRequest{Reason: ReasonLimit, Env: []string{"PWATCH_LIMIT=memory_max"}}
	restart := func(up string) {
		t.Helper()
		n := len(h.log.all())
		if err := h.svc.Restart(context.Background(), limit); err != nil {
			t.Fatal(err)
		}
		h.log.waitLines(t, n, "Try to restart ('web')", up)
		h.waitState(t, Up)
	}
	restart("('web',pid=1002) Up") // adopted, not restarted by pcheck: free
	restart("('web',pid=1003) Up") // within stable_uptime of that restart: one attempt
	h.clock.advance(time.Hour)
	restart("('web',pid=1004) Up") // stable again: free
	want := []string{"limit 0 limit memory_max", "limit 1 limit memory_max", "limit 0 limit memory_max"}
	if runs := h.scriptRuns(t); !slices.Equal(runs, want) {
		t.Fatalf("script runs (REASON ATTEMPT CAUSE LIMIT) %q, want %q", runs, want)
	}
	if st := h.svc.Status(); st.Restarts != 1 {
		t.Fatalf("restarts within grace %d, want 1", st.Restarts)
	}
}

// With a grace, the tree gets SIGTERM and, when it ignores that, SIGKILL
// once the grace has passed: real processes, through the real kill.
func TestRestartGraceTermThenKill(t *testing.T) {
	for _, tc := range []struct {
		name, shell string
		sig         syscall.Signal
	}{
		{"ends on TERM", "exec sleep 600", syscall.SIGTERM},
		{"ignores TERM", "trap '' TERM; exec sleep 600", syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const grace = 300 * time.Millisecond
			h := newHarness(t, "ok", nil)
			table, err := proc.NewTable("/proc", nil)
			if err != nil {
				t.Fatal(err)
			}
			id, wait := startReal(t, table, tc.shell)
			h.procs.table, h.procs.cur = table, &proc.Match{Process: proc.Process{ID: id}}
			h.running(t)
			h.run(t)
			h.waitState(t, Up)
			began := time.Now()
			if err := h.svc.Restart(context.Background(), RestartRequest{Reason: ReasonOperator, Grace: grace}); err != nil {
				t.Fatal(err)
			}
			ws := wait()
			took := time.Since(began)
			h.svc.Exited(exitwatch.Event{Kind: exitwatch.Exit, ID: id, Known: true, Signal: int(ws.Signal())})
			if ws.Signal() != tc.sig {
				t.Fatalf("the process ended by %v, want %v", ws.Signal(), tc.sig)
			}
			if tc.sig == syscall.SIGKILL && took < grace {
				t.Fatalf("SIGKILL after %v, before the grace of %v", took, grace)
			}
			h.log.waitLines(t, 0, fmt.Sprintf("Process ['web',pid=%d] killed by signal %d (%s), sent by pcheck (padmin restart)",
				id.PID, tc.sig, strings.ToUpper(unixSignalName(tc.sig))), "Try to restart ('web')", "('web',pid=1001) Up")
			h.procs.mu.Lock()
			defer h.procs.mu.Unlock()
			if o := h.procs.opts; len(o) != 1 || o[0].Signal != syscall.SIGTERM || o[0].Timeout != grace {
				t.Fatalf("kills %+v, want one SIGTERM with the grace as its timeout", o)
			}
		})
	}
}

func unixSignalName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "sigterm", syscall.SIGKILL: "sigkill"}[s]
}

// startReal starts sh -c shell and returns its identity and its wait.
func startReal(t *testing.T, table *proc.Table, shell string) (proc.ID, func() syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", shell)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan syscall.WaitStatus, 1)
	go func() {
		_ = cmd.Wait()
		ended <- cmd.ProcessState.Sys().(syscall.WaitStatus)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	p, err := table.Read(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return p.ID, func() syscall.WaitStatus {
		select {
		case ws := <-ended:
			return ws
		case <-time.After(20 * time.Second):
			t.Fatal("the process was not killed")
			return 0
		}
	}
}

// A restart is for an Up service: paused or retried over, it is refused,
// naming the state, and nothing runs.
func TestRestartRefusedWhenNotUp(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		h := newHarness(t, "ok", nil)
		h.running(t)
		h.run(t)
		h.waitState(t, Up)
		if err := h.svc.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		err := h.svc.Restart(context.Background(), RestartRequest{Reason: ReasonOperator})
		if err == nil || !strings.Contains(err.Error(), "paused; padmin start it") {
			t.Fatalf("restart of a paused service: %v, want a refusal that says paused", err)
		}
		if _, err := os.Stat(h.envLog); err == nil || h.svc.State() != Paused {
			t.Fatalf("a refused restart ran the script, or left Paused (%v)", h.svc.State())
		}
	})
	t.Run("retry over", func(t *testing.T) {
		h := newHarness(t, "fail", func(c *pfile.Service) { c.RetryCount = 1 })
		h.run(t)
		h.waitState(t, RetryOver)
		n := len(h.scriptRuns(t))
		err := h.svc.Restart(context.Background(), RestartRequest{Reason: ReasonLimit})
		if err == nil || !strings.Contains(err.Error(), "RetryOver") {
			t.Fatalf("restart of a retried-over service: %v, want a refusal naming RetryOver", err)
		}
		if got := len(h.scriptRuns(t)); got != n {
			t.Fatalf("a refused restart ran the script")
		}
	})
	t.Run("bad request", func(t *testing.T) {
		h := newHarness(t, "ok", nil)
		for _, r := range []RestartRequest{{Reason: "whim"}, {Reason: ReasonLimit, Env: []string{"PWATCH_REASON=x"}}, {Reason: ReasonLimit, Env: []string{"LD_PRELOAD=x"}}} {
			if err := h.svc.Restart(context.Background(), r); err == nil {
				t.Errorf("request %+v accepted", r)
			}
		}
	})
}
