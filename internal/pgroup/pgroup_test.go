// SPDX-License-Identifier: Apache-2.0

package pgroup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The group is killed through the pidfd even once its leader is reaped:
// what the leader left in its group goes, and nothing else.
func TestKillReachesTheGroupAfterItsLeaderIsReaped(t *testing.T) {
	var out bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", "sleep 300 </dev/null >/dev/null 2>&1 & echo $!")
	cmd.Stdout = &out
	g := New(cmd)
	defer g.Close()
	if err := cmd.Run(); err != nil { // leader exits and is reaped
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("no pid in %q", out.String())
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !exited(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the group's sleep %d survived", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exited: gone, or a zombie nobody reaped yet.
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// startGroup starts sh -c script in a group and reads the pid of the
// background sleep it prints.
func startGroup(t *testing.T, script string, fallback bool) (*Group, *exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := New(cmd)
	g.noGroupSignal = fallback
	t.Cleanup(g.Close)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var line [32]byte
	n, _ := out.Read(line[:])
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatalf("no pid in %q", line[:n])
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // our own sleep
	return g, cmd, pid
}

func waitExited(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !exited(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the group's sleep %d survived", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Wait kills the group when its context ends, on both paths: the pidfd's
// group signal and, as before Linux 6.9, kill(2) on -pgid while the
// leader is still unreaped.
func TestWaitKillsTheGroupWhenCancelled(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(map[bool]string{false: "pidfd", true: "kill"}[fallback], func(t *testing.T) {
			g, _, pid := startGroup(t, "sleep 300 </dev/null >/dev/null 2>&1 & echo $!; wait", fallback)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait = %v, want the context's error", err)
			}
			waitExited(t, pid)
		})
	}
}

// Before Linux 6.9 a group is signalled by number: once its leader is
// reaped that number may name another group, so Kill refuses and sends
// nothing (the old Kill sent kill(-pgid) whatever had been reaped).
func TestFallbackKillAfterReapSignalsNothing(t *testing.T) {
	g, _, pid := startGroup(t, "sleep 300 </dev/null >/dev/null 2>&1 & echo $!", true)
	if err := g.Wait(context.Background()); err != nil { // the leader exits, reaped
		t.Fatal(err)
	}
	if err := g.Kill(); !errors.Is(err, ErrReaped) {
		t.Fatalf("Kill after reap = %v, want ErrReaped", err)
	}
	if exited(pid) {
		t.Fatalf("a kill(2) went to group %d after its leader was reaped", pid)
	}
}

// A command that finishes is not killed: its group (a daemon it started)
// stays.
func TestWaitLeavesAFinishedCommandsGroup(t *testing.T) {
	g, _, pid := startGroup(t, "sleep 300 </dev/null >/dev/null 2>&1 & echo $!", false)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exited(pid) {
		t.Fatal("the finished command's group was killed")
	}
}
