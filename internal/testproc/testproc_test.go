// SPDX-License-Identifier: Apache-2.0

package testproc

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"

	"github.com/prometheus/procfs"
)

// waitStatus reaps a direct helper and returns how it ended.
func waitStatus(t *testing.T, p *Proc) syscall.WaitStatus {
	t.Helper()
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wait %v: %v", p.ID, err)
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func TestExitWaitsForTrigger(t *testing.T) {
	p := Exit(t, 3)
	if p.ID.PID != p.cmd.Process.Pid || p.ID.StartTime == 0 {
		t.Fatalf("identity %v for pid %d", p.ID, p.cmd.Process.Pid)
	}
	p.WaitFor("running before the trigger", func(s procfs.ProcStat) bool { return s.State != "Z" })
	p.Trigger()
	if ws := waitStatus(t, p); !ws.Exited() || ws.ExitStatus() != 3 {
		t.Errorf("status %v, want exit 3", ws)
	}
}

func TestSegfaultReallyFaults(t *testing.T) {
	p := Segfault(t)
	p.Trigger()
	if ws := waitStatus(t, p); !ws.Signaled() || ws.Signal() != syscall.SIGSEGV || ws.CoreDump() {
		t.Errorf("status %v, want SIGSEGV without core", ws)
	}
}

func TestSleepDiesOnSignal(t *testing.T) {
	p := Sleep(t)
	p.Signal(syscall.SIGTERM)
	if ws := waitStatus(t, p); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("status %v, want SIGTERM", ws)
	}
}

func TestThreads(t *testing.T) {
	p := Threads(t, 3, 7)
	if n := p.Threads(); n != 4 {
		t.Fatalf("%d threads, want 4", n)
	}
	p.StopThreads()
	if n := p.Threads(); n != 1 {
		t.Fatalf("%d threads after StopThreads, want 1", n)
	}
	p.Trigger()
	if ws := waitStatus(t, p); !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("status %v, want exit 7", ws)
	}
}

func TestLeaderExitsFirst(t *testing.T) {
	p := Threads(t, 1, 9)
	p.ExitLeader()
	p.Trigger()
	if ws := waitStatus(t, p); !ws.Exited() || ws.ExitStatus() != 9 {
		t.Errorf("status %v, want exit 9", ws)
	}
}

func TestZombieStaysUnreaped(t *testing.T) {
	p := Zombie(t, 5)
	if p.ID.PID == p.cmd.Process.Pid {
		t.Fatal("the zombie's identity is its parent's")
	}
	p.Trigger()
	p.WaitZombie()
	if p.cmd.ProcessState != nil {
		t.Fatal("the parent exited")
	}
}
