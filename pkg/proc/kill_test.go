// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/argrule"
)

func liveTable(t testing.TB) *Table {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	table, err := NewTable("/proc", log)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// killPaths runs f once with signals through pidfds and once with kill(2)
// after re-reading the identity, the path for kernels without pidfds.
func killPaths(t *testing.T, f func(t *testing.T, table *Table)) {
	t.Run("pidfd", func(t *testing.T) {
		table := liveTable(t)
		if !table.usePidfd() {
			testpriv.Unavailable(t, "pidfd_open is not available on this kernel")
		}
		f(t, table)
	})
	t.Run("kill", func(t *testing.T) {
		table := liveTable(t)
		table.noPidfd = true
		if table.usePidfd() {
			t.Fatal("pidfds not disabled")
		}
		f(t, table)
	})
}

var helperArgs = argrule.MustCompile(`^` + helperMarker + ` `)

// scanHelper scans the live table for the helper tree h started.
func scanHelper(t *testing.T, table *Table, h *helper) Match {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := table.Scan(Matcher{Exe: exe, Args: helperArgs})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID.PID == h.pids[0] {
			return m
		}
	}
	t.Fatalf("helper %d not among the matches %s", h.pids[0], render(ms))
	return Match{}
}

func TestScanLive(t *testing.T) {
	table := liveTable(t)
	h := startHelper(t, "master")
	m := scanHelper(t, table, h)
	if m.ID != h.ids[0] {
		t.Errorf("match %v, want %v", m.ID, h.ids[0])
	}
	var got []int
	for _, d := range m.Descendants {
		got = append(got, d.ID.PID)
		if d.PPID != h.pids[0] {
			t.Errorf("descendant %v has parent %d, want %d", d.ID, d.PPID, h.pids[0])
		}
	}
	want := slices.Clone(h.pids[1:]) // two matching workers and a sleep that does not match
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("descendants %v, want %v", got, want)
	}
	for _, d := range m.Descendants {
		if d.ID.PID == h.pids[3] && !slices.Equal(d.Argv, []string{"sleep", "1000"}) {
			t.Errorf("sleep's argv = %q", d.Argv)
		}
	}
}

func TestKillTree(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "master")
		m := scanHelper(t, table, h)
		left, err := table.Kill(context.Background(), m.IDs(), KillOptions{Timeout: 30 * time.Second})
		if err != nil || len(left) != 0 {
			t.Fatalf("Kill = %v, %v; want all killed", left, err)
		}
		if sig := signalOf(h.waitExit(t)); sig != syscall.SIGTERM {
			t.Errorf("master ended by %v, want SIGTERM", sig)
		}
		for _, id := range m.IDs() {
			if alive, err := table.Alive(id); alive || err != nil {
				t.Errorf("%v alive=%v err=%v after Kill", id, alive, err)
			}
		}
	})
}

// A process whose leader thread has exited shows Z while its other threads
// run: it is alive, so Kill must signal it and wait for the whole group
// (CheckAlive's rule), not count it dead at the leader's state. A worker
// ended by SIGTERM passes through the same state while its threads exit.
func TestKillWaitsForTheThreadGroup(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "leader-exits")
		id := h.ids[0]
		waitState(t, table, id, 'Z')
		if alive, err := table.Alive(id); !alive || err != nil {
			t.Fatalf("Alive(%v) = %v, %v with its leader exited and its threads running; want alive", id, alive, err)
		}
		left, err := table.Kill(context.Background(), h.ids, KillOptions{Timeout: 30 * time.Second})
		if err != nil || len(left) != 0 {
			t.Fatalf("Kill = %v, %v; want killed", left, err)
		}
		if alive, err := table.Alive(id); alive || err != nil {
			t.Fatalf("%v alive=%v err=%v after Kill", id, alive, err)
		}
		if sig := signalOf(h.waitExit(t)); sig != syscall.SIGTERM {
			t.Errorf("ended by %v, want SIGTERM", sig)
		}
	})
}

func TestKillEscalatesToSIGKILL(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "master", "ignore-term")
		m := scanHelper(t, table, h)
		left, err := table.Kill(context.Background(), m.IDs(), KillOptions{Timeout: 200 * time.Millisecond})
		if err != nil || len(left) != 0 {
			t.Fatalf("Kill = %v, %v; want all killed", left, err)
		}
		if sig := signalOf(h.waitExit(t)); sig != syscall.SIGKILL {
			t.Errorf("master ignoring SIGTERM ended by %v, want SIGKILL", sig)
		}
		for _, id := range m.IDs() {
			if alive, err := table.Alive(id); alive || err != nil {
				t.Errorf("%v alive=%v err=%v after Kill", id, alive, err)
			}
		}
	})
}

// A stopped process handles SIGTERM only once continued: Kill continues it.
func TestKillContinuesStopped(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "graceful")
		if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitState(t, table, h.ids[0], 'T')
		left, err := table.Kill(context.Background(), h.ids, KillOptions{Timeout: 30 * time.Second})
		if err != nil || len(left) != 0 {
			t.Fatalf("Kill = %v, %v; want killed", left, err)
		}
		if s := h.waitExit(t); s.ExitCode() != 7 {
			t.Errorf("stopped process ended with %v, want its SIGTERM handler's exit 7", s)
		}
	})
}

// waitState polls (bounded) until id is in state want.
func waitState(t *testing.T, table *Table, id ID, want State) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, state, err := table.Identity(id.PID)
		if err != nil || got != id {
			t.Fatalf("Identity(%d) = %v, %v", id.PID, got, err)
		}
		if state == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v in state %v, not %v, after 30s", id, state, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A pid whose start time is not the one meant is a reused pid: it must
// never be signalled, and counts as gone.
func TestKillRefusesReusedPID(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "sleeper")
		real := h.ids[0]
		forged := ID{PID: real.PID, StartTime: real.StartTime + 1}
		left, err := table.Kill(context.Background(), []ID{forged}, KillOptions{Signal: syscall.SIGKILL})
		if err != nil || len(left) != 0 {
			t.Errorf("Kill(reused pid) = %v, %v; want it counted as gone", left, err)
		}
		select {
		case <-h.exited:
			t.Fatalf("the process now holding pid %d was signalled: %v", real.PID, h.state)
		case <-time.After(300 * time.Millisecond):
		}
		if alive, err := table.Alive(real); !alive || err != nil {
			t.Errorf("Alive(%v) = %v, %v after Kill of a forged identity", real, alive, err)
		}
	})
}

func TestKillGoneProcess(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "sleeper")
		if err := h.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		h.waitExit(t)
		left, err := table.Kill(context.Background(), h.ids, KillOptions{})
		if err != nil || len(left) != 0 {
			t.Errorf("Kill(dead and reaped) = %v, %v; want it counted as killed", left, err)
		}
	})
}

func TestKillZombie(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		cmd := exec.Command("true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		id, _, err := table.Identity(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, table, id, 'Z') // not reaped until cmd.Wait
		left, err := table.Kill(context.Background(), []ID{id}, KillOptions{Timeout: time.Hour, KillWait: time.Hour})
		if err != nil || len(left) != 0 {
			t.Errorf("Kill(zombie) = %v, %v; want it counted as killed", left, err)
		}
	})
}

func TestKillCancelled(t *testing.T) {
	table := liveTable(t)
	h := startHelper(t, "sleeper")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	left, err := table.Kill(ctx, h.ids, KillOptions{})
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || len(left) != 0 {
		t.Errorf("Kill(cancelled) = %v, %v; want no survivors and ErrInterrupted", left, err)
	}
	if alive, err := table.Alive(h.ids[0]); !alive || err != nil {
		t.Errorf("cancelled Kill signalled %v (alive=%v, %v)", h.ids[0], alive, err)
	}
}

// A kill cancelled while it waits (a reload, pcheck stopping) has proved
// nothing: it names no survivor, so no caller takes it for a failed kill.
// SIGTERM is ignored and gets an hour: the deadline ends the kill while it
// waits.
func TestKillCancelledMidwayNamesNoSurvivor(t *testing.T) {
	killPaths(t, func(t *testing.T, table *Table) {
		h := startHelper(t, "master", "ignore-term")
		m := scanHelper(t, table, h)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		left, err := table.Kill(ctx, m.IDs(), KillOptions{Timeout: time.Hour})
		if len(left) != 0 || !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Kill cancelled midway = %v, %v; want no survivors, ErrInterrupted", left, err)
		}
		if alive, err := table.Alive(m.ID); !alive || err != nil {
			t.Fatalf("the master ignoring SIGTERM was SIGKILLed by a cancelled kill (alive=%v, %v)", alive, err)
		}
	})
}

// Another user's processes: matched by real uid, and killed (needs root to
// start them). Without a uid to match, a process of another user running
// the same executable is never the service's (issue 21: an impostor).
func TestKillOtherUserLive(t *testing.T) {
	testpriv.Root(t)
	table := liveTable(t)
	sleep := privateSleep(t)
	start := func(uid uint32) *exec.Cmd {
		cmd := exec.Command(sleep, "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	const nobody = 65534
	theirs, ours := start(nobody), start(0)

	// Each must have exec'd the copy before a scan can see it.
	scanUntil := func(m Matcher, want int) []Match {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ms, err := table.Scan(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 1 && ms[0].ID.PID == want {
				return ms
			}
			if time.Now().After(deadline) {
				t.Fatalf("Scan(%+v) = %s, want only %d", m, render(ms), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ms := scanUntil(Matcher{Exe: sleep, UID: intp(nobody)}, theirs.Process.Pid)
	scanUntil(Matcher{Exe: sleep}, ours.Process.Pid) // root's only: nobody's exec is done
	cands := []Process{{ID: ms[0].ID}}
	if found, err := table.Among(Matcher{Exe: sleep}, cands); err != nil || len(found) != 0 {
		t.Errorf("Among(no uid) took nobody's %d for the service: %s, %v", theirs.Process.Pid, render(found), err)
	}
	if found, err := table.Among(Matcher{Exe: sleep, UID: intp(nobody)}, cands); err != nil || len(found) != 1 {
		t.Errorf("Among(uid %d) = %s, %v; want %d", nobody, render(found), err, theirs.Process.Pid)
	}
	checkGrants(t, table, sleep, ms[0].ID, ours.Process.Pid)
	left, err := table.Kill(context.Background(), ms[0].IDs(), KillOptions{Timeout: 30 * time.Second})
	if err != nil || len(left) != 0 {
		t.Fatalf("Kill = %v, %v", left, err)
	}
	theirs.Wait()
	if sig := signalOf(theirs.ProcessState); sig != syscall.SIGTERM {
		t.Errorf("nobody's sleep ended by %v, want SIGTERM", sig)
	}
	if err := ours.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("root's sleep was killed too: %v", err)
	}
}

// privateSleep is a copy of sleep(1) in a directory of the test's own that
// uid 65534 can reach, so that no other process on the host matches it.
func privateSleep(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // let nobody reach the binary
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sleep := filepath.Join(dir, "pwatch-test-sleep")
	data, err := os.ReadFile("/usr/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sleep, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return sleep
}

// checkGrants: Granted (what pcheck's own restart script started) takes
// another user's process id by its identity alone, never one of another
// identity, executable or args; rootPID is root's own copy, matched as usual.
func checkGrants(t *testing.T, table *Table, sleep string, id ID, rootPID int) {
	t.Helper()
	granted := &Grants{}
	granted.Set([]ID{{PID: id.PID, StartTime: id.StartTime + 1}})
	if found, err := table.Among(Matcher{Exe: sleep, Granted: granted}, []Process{{ID: id}}); err != nil || len(found) != 0 {
		t.Errorf("Among(granted another identity) = %s, %v; want none", render(found), err)
	}
	granted.Set([]ID{id})
	if found, err := table.Among(Matcher{Exe: sleep, Granted: granted}, []Process{{ID: id}}); err != nil || len(found) != 1 || found[0].ID != id {
		t.Errorf("Among(granted %v) = %s, %v; want it", id, render(found), err)
	}
	if found, err := table.Scan(Matcher{Exe: sleep, Granted: granted}); err != nil || len(found) != 2 {
		t.Errorf("Scan(granted %v) = %s, %v; want it and root's %d", id, render(found), err, rootPID)
	}
	if found, err := table.Scan(Matcher{Exe: "/usr/bin/true", Granted: granted}); err != nil || len(found) != 0 {
		t.Errorf("Scan(another executable, granted %v) = %s, %v; a grant must not stand for exe and args", id, render(found), err)
	}
}
