// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type lineLog struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func newLineLog() *lineLog { return &lineLog{more: make(chan struct{}, 100)} }

func (l *lineLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	l.more <- struct{}{}
}

func (l *lineLog) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got := strings.Join(l.lines, "\n")
		l.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("no line %q in %q", want, got)
		}
	}
}

func TestRunScriptEnvAndOutput(t *testing.T) {
	s := writeScript(t, `echo "svc=$PWATCH_SERVICE arg=$1"; echo oops >&2`)
	l := newLineLog()
	if err := runScript(context.Background(), []string{s, "first"}, []string{"PWATCH_SERVICE=web"}, l.add, nil); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, "svc=web arg=first")
	l.waitFor(t, "oops")
}

func TestRunScriptDoesNotInheritSystemdNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("PWATCH_KEEP", "kept")
	s := writeScript(t, `echo "notify=${NOTIFY_SOCKET:-unset} watchdog=${WATCHDOG_USEC:-unset} keep=$PWATCH_KEEP"`)
	l := newLineLog()
	if err := runScript(context.Background(), []string{s}, nil, l.add, nil); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, "notify=unset watchdog=unset keep=kept")
}

// Issue 21, also: a restart script runs in the fixed environment, however
// pcheck was started: PATH, umask 022, cwd /, and of pcheck's variables
// only the PWATCH_* ones.
func TestRunScriptFixedEnvironment(t *testing.T) {
	t.Setenv("PCHECK_SECRET", "leaked")
	t.Setenv("PATH", t.TempDir()+":/usr/bin:/bin")
	t.Setenv("PWATCH_KEEP", "kept")
	t.Chdir(t.TempDir())
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	s := writeScript(t, `echo "path=$PATH umask=$(umask) cwd=$(pwd) secret=${PCHECK_SECRET:-unset} keep=$PWATCH_KEEP"`)
	l := newLineLog()
	if err := runScript(context.Background(), []string{s}, nil, l.add, nil); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, "path=/usr/sbin:/usr/bin:/sbin:/bin umask=0022 cwd=/ secret=unset keep=kept")
}

// A line longer than we log is cut, and reading goes on: the script must
// not die of SIGPIPE for printing it.
func TestRunScriptSurvivesALongLine(t *testing.T) {
	s := writeScript(t, "head -c 20000 /dev/zero | tr '\\0' x; echo\necho after\n")
	l := newLineLog()
	if err := runScript(context.Background(), []string{s}, nil, l.add, nil); err != nil {
		t.Fatalf("the script failed: %v", err)
	}
	l.waitFor(t, "xxxx [line cut]")
	l.waitFor(t, "after")
}

func TestRunScriptFailureIsAnError(t *testing.T) {
	s := writeScript(t, "exit 4\n")
	err := runScript(context.Background(), []string{s}, nil, func(string) {}, nil)
	if err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("err = %v, want exit status 4", err)
	}
}

// A script that leaves a daemon holding its output must not block us.
func TestRunScriptDoesNotWaitForDaemonsOutput(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := writeScript(t, "sleep 300 & echo $! > "+pidFile+"\necho started\n")
	l := newLineLog()
	done := make(chan error, 1)
	go func() { done <- runScript(context.Background(), []string{s}, nil, l.add, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runScript waited for the background daemon's output")
	}
	l.waitFor(t, "started")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	killPID(t, strings.TrimSpace(string(b)))
}

func TestRunScriptTimeoutKillsItsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := writeScript(t, "sleep 300 &\necho $! > "+pidFile+"\nwait\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runScript(ctx, []string{s}, nil, func(string) {}, nil) }()
	waitFile(t, pidFile)
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "did not finish in time") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	b, _ := os.ReadFile(pidFile)
	waitGone(t, strings.TrimSpace(string(b)))
}
