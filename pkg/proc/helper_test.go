// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the live processes of the tests: run with
// helperEnv set, it becomes a master, a worker or a process with a SIGTERM
// handler, and blocks until killed. Its argv is
// `proc.test pwatch-proc-helper ROLE [ignore-term]`.
const (
	helperEnv    = "PWATCH_PROC_HELPER"
	helperMarker = "pwatch-proc-helper"
)

// A helper's main goroutine keeps the main thread (the thread group's
// leader), so the leader-exits role can end that thread alone.
func init() {
	if os.Getenv(helperEnv) == "1" {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runHelper: master starts two workers and a sleep (a descendant that does
// not match), prints "ready PID..." and blocks; worker blocks; graceful
// exits 7 on SIGTERM; leader-exits ends its main thread (the leader) with
// exit(2), not exit_group, so the leader is a zombie while its other
// threads run on. With ignore-term the process (and its workers)
// ignore SIGTERM.
func runHelper(args []string) int {
	if len(args) < 2 || args[0] != helperMarker {
		fmt.Fprintln(os.Stderr, "bad helper args", args)
		return 2
	}
	role, ignoreTerm := args[1], len(args) > 2 && args[2] == "ignore-term"
	if ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	switch role {
	case "master":
		pids := []string{strconv.Itoa(os.Getpid())}
		for range 2 {
			w := exec.Command(os.Args[0], append([]string{helperMarker, "worker"}, args[2:]...)...)
			w.Env = os.Environ()
			out, err := w.StdoutPipe()
			if err == nil {
				err = w.Start()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			// Ready only once the worker has set up its signals.
			if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
				fmt.Fprintln(os.Stderr, "worker:", err)
				return 1
			}
			pids = append(pids, strconv.Itoa(w.Process.Pid))
		}
		s := exec.Command("sleep", "1000")
		if err := s.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pids = append(pids, strconv.Itoa(s.Process.Pid))
		// Start returns at the exec; the new command line is set a
		// moment later, as the program is loaded.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.Process.Pid)); string(b) == "sleep\x001000\x00" {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "sleep never showed its command line")
				return 1
			}
		}
		fmt.Println("ready " + strings.Join(pids, " "))
	case "graceful":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready " + strconv.Itoa(os.Getpid()))
		<-c
		return 7
	case "leader-exits":
		fmt.Println("ready " + strconv.Itoa(os.Getpid()))
		// The other threads of the runtime run on; SIGTERM still ends
		// the group (Go's default for an unhandled SIGTERM).
		syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
	default:
		fmt.Println("ready " + strconv.Itoa(os.Getpid()))
	}
	select {}
}

// helper is a started helper process.
type helper struct {
	cmd    *exec.Cmd
	pids   []int         // as printed on "ready": itself first
	ids    []ID          // their identities
	exited chan struct{} // closed once the process is reaped
	state  *os.ProcessState
}

// startHelper starts the test binary as a helper in its own process group
// and waits (bounded) for it to say it is ready. Cleanup kills the group.
func startHelper(t testing.TB, args ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{helperMarker}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, exited: make(chan struct{})}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		select {
		case <-h.exited:
		default: // unreaped, the leader keeps the group id from reuse
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-h.exited
		}
		// Descendants that outlived their master, by identity.
		if _, err := liveTable(t).Kill(context.Background(), h.ids, KillOptions{Signal: syscall.SIGKILL}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
		h.state, _ = cmd.Process.Wait()
		close(h.exited)
	}()
	select {
	case line := <-ready:
		for _, f := range strings.Fields(strings.TrimPrefix(line, "ready")) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("helper said %q", line)
			}
			h.pids = append(h.pids, pid)
		}
		if len(h.pids) == 0 {
			t.Fatalf("helper said %q", line)
		}
		for _, pid := range h.pids {
			id, _, err := liveTable(t).Identity(pid)
			if err != nil {
				t.Fatalf("helper pid %d: %v", pid, err)
			}
			h.ids = append(h.ids, id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready within 30s")
	}
	return h
}

// waitExit waits (bounded) for the helper to be reaped and returns how it
// ended.
func (h *helper) waitExit(t testing.TB) *os.ProcessState {
	t.Helper()
	select {
	case <-h.exited:
		return h.state
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not exit within 30s")
		return nil
	}
}

// signalOf is the signal that ended a process, or 0.
func signalOf(s *os.ProcessState) syscall.Signal {
	if ws, ok := s.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}
