// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/runstate"
)

// Faults at the worst moment (issue 13): pcheck killed in the middle of a
// restart, a master dead while no pcheck ran, padmin giving up.

// adopted is pwatch's own syslog line for a running service it adopts.
func adopted(name string, pid int) string {
	return fmt.Sprintf("Running service adopted ('%s',pid=%d)", name, pid)
}

// waitLineFrom waits for text from pcheck[pid] in syslog.
func waitLineFrom(t *testing.T, syslog *syslogtest.Server, ident string, pid int, text string) {
	t.Helper()
	if _, err := syslog.WaitMatch(waitCtx(t), fmt.Sprintf("%q from %s[%d]", text, ident, pid), func(m syslogtest.Message) bool {
		return m.Ident == ident && m.PID == pid && m.Text == text
	}); err != nil {
		t.Fatal(err)
	}
}

// gatedSleeper is a sleeper whose restart script, once it runs, says so
// (a file) and waits for the test to open its gate before it starts the
// service: a restart in flight for as long as the test wants.
func gatedSleeper(t *testing.T, dir, name string) (s *sleeper, running, gate string) {
	t.Helper()
	s = newSleeper(t, dir, name)
	running, gate = filepath.Join(dir, name+".running"), filepath.Join(dir, name+".gate")
	script := filepath.Join(dir, name+".gated")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\n: > %s\nwhile [ ! -e %s ]; do sleep 0.05; done\nexec %s\n", running, gate, s.script), 0o755)
	s.script = script
	return s, running, gate
}

// TestRestartInFlightIsWaitedFor: pcheck SIGKILLed while its restart script
// runs (the script lives on: KillMode=process) leaves a record; the next
// pcheck waits for that script instead of starting a second copy, and
// adopts the one service it started.
func TestRestartInFlightIsWaitedFor(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "inflight"
	sc := newScene(t)
	s, running, gate := gatedSleeper(t, sc.dir, name)
	pf := s.writePfile(t, sc.dir, "", "restart_timeout 120")

	first := startPcheck(t, sc.syslog, sc.dir, "netlink", pf) // not running: started
	record := filepath.Join(sc.dir, "state", "run", name+".run")
	pollUntil(t, "the restart script runs and is recorded", func() bool {
		_, errRun := os.Stat(running)
		_, errRec := os.Stat(record)
		return errRun == nil && errRec == nil
	})
	if err := first.cmd.Process.Kill(); err != nil { // our own pcheck
		t.Fatal(err)
	}
	<-first.exited

	second := startPcheck(t, sc.syslog, sc.dir, "netlink", pf)
	pollUntil(t, "the second pcheck waits for the first one's script", func() bool {
		return strings.Contains(second.stderr.String(), "a restart script of the previous pcheck is still running")
	})
	writeFile(t, gate, "", 0o644) // the first pcheck's script starts the service
	var pids []int
	pollUntil(t, "the service runs", func() bool { pids = s.pids(); return len(pids) > 0 })
	waitLineFrom(t, sc.syslog, "pcheck", second.logPID, adopted(name, pids[0]))
	st := second.waitState(t, name, "Up")
	if now := s.pids(); len(now) != 1 || !slices.Equal(st.PIDs, now) {
		t.Fatalf("%s runs as %v, pcheck watches %v: want one copy, watched", name, now, st.PIDs)
	}
	for _, l := range second.allLines() {
		if l == tryRestart(name) {
			t.Fatalf("the second pcheck restarted %s too: %q", name, second.allLines())
		}
	}
	runs, err := runstate.Open(filepath.Join(sc.dir, "state"), "/proc")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok, err := runs.Script(name); ok || err != nil {
		t.Errorf("the finished script is still recorded: %v, %v, %v", id, ok, err)
	}
}

// TestDeadMastersOrphansAreNotAdopted: a master dies while no pcheck runs;
// its worker, now a child of init, matches the service with no matching
// ancestor. The next pcheck must not take it for the service: it kills the
// worker and restarts the service.
func TestDeadMastersOrphansAreNotAdopted(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "orphans"
	sc := newScene(t)
	exe := testproc.CopyBinary(t, "pwatch-orphans")
	script := filepath.Join(sc.dir, "start")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\nexec setsid -f %s sleep </dev/null >/dev/null 2>&1\n", exe), 0o755)
	t.Cleanup(func() { killExe(exe) })
	pf := filepath.Join(sc.dir, name+".pfile")
	writeFile(t, pf, fmt.Sprintf("process %s\nrestart_script %s\nkill_timeout 1\n", exe, script), 0o644)

	master := testproc.Forker(t, exe)
	worker := master.Fork()
	first := startPcheck(t, sc.syslog, sc.dir, "pidfd", pf)
	waitLineFrom(t, sc.syslog, "pcheck", first.logPID, adopted(name, master.ID.PID))
	first.stop() // SIGTERM: the service is left running, unwatched
	master.Signal(syscall.SIGKILL)
	pollUntil(t, "the master is dead", func() bool {
		life, _ := proc.CheckAlive("/proc", master.ID)
		return life != proc.Running
	})

	second := startPcheck(t, sc.syslog, sc.dir, "pidfd", pf)
	waitLineFrom(t, sc.syslog, "pcheck", second.logPID,
		fmt.Sprintf("Orphaned processes of a dead master killed ('%s',pid=%d)", name, worker.PID))
	lines, err := second.lines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	m := upLine.FindStringSubmatch(lines[1])
	if lines[0] != tryRestart(name) || m == nil {
		t.Fatalf("the second pcheck logged %q, want a restart", lines)
	}
	if pid, _ := strconv.Atoi(m[2]); pid == worker.PID {
		t.Fatalf("the orphaned worker %d was taken for the service", pid)
	}
	if life, _ := proc.CheckAlive("/proc", worker); life == proc.Running {
		t.Errorf("the orphaned worker %v still runs", worker)
	}
}

// TestRefusedCommandLogsNothing: padmin's "Command execute." line is for a
// command pcheck accepted; `padmin stop nosuch` is refused and logs none.
func TestRefusedCommandLogsNothing(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	sc := newScene(t)
	s := newSleeper(t, sc.dir, "accepted")
	pf := s.writePfile(t, sc.dir, "")
	pid := s.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "netlink", pf)
	waitLineFrom(t, sc.syslog, "pcheck", p.logPID, adopted("accepted", pid))

	refused := p.runPadmin(t, "stop", "nosuch")
	if refused.code == 0 {
		t.Fatalf("padmin stop nosuch succeeded:\n%s", refused.out)
	}
	// padmin runs one after the other: the accepted stop's line comes after
	// anything the refused one sent.
	accepted := p.padmin(t, "stop", "accepted")
	expectPadminLine(t, sc.syslog, accepted, command("stop", "accepted"))
	for _, m := range sc.syslog.Messages() {
		if m.Ident == "padmin" && m.PID == refused.pid {
			t.Fatalf("the refused command logged %q", m.Text)
		}
	}
}

// TestStartAnswersDuringARecovery: padmin start while a restart is in
// flight answers at once; it does not wait for the recovery (padmin would
// time out, and its start run later anyway).
func TestStartAnswersDuringARecovery(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "busy"
	sc := newScene(t)
	s, running, gate := gatedSleeper(t, sc.dir, name)
	pf := s.writePfile(t, sc.dir, "", "restart_timeout 600")
	p := startPcheck(t, sc.syslog, sc.dir, "netlink", pf)
	pollUntil(t, "the restart script runs", func() bool { _, err := os.Stat(running); return err == nil })
	starter := p.padmin(t, "start", name) // the script still waits at its gate
	expectPadminLine(t, sc.syslog, starter, command("start", name))
	writeFile(t, gate, "", 0o644)
	p.waitState(t, name, "Up")
}
