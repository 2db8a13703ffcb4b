// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
)

// niced makes d's start script run it at nice n, in a session of its own
// whose autogroup is niced n too (with sched autogroup on, nice alone only
// weighs threads within a session). The autogroup is written after
// setsid, from the new session, never pcheck's.
func (d *demoServer) niced(t testing.TB, n int) {
	t.Helper()
	writeFile(t, d.start, fmt.Sprintf("#!/bin/sh\nsetsid sh -c 'echo %d >/proc/self/autogroup && exec nice -n %d %s' </dev/null >>%s 2>&1 &\n",
		n, n, strings.Join(d.argv, " "), filepath.Join(d.dir, "demo.log")), 0o755)
}

// expectNiced checks the premise of niced: pid runs at nice n, in an
// autogroup niced n when autogroups are on.
func expectNiced(t testing.TB, pid, n int) {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 17 || f[16] != strconv.Itoa(n) {
		t.Fatalf("pid %d runs at nice %v, want %d", pid, f[16:17], n)
	}
	if on, _ := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); strings.TrimSpace(string(on)) != "1" {
		return
	}
	ag, err := os.ReadFile(fmt.Sprintf("/proc/%d/autogroup", pid))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(ag)), fmt.Sprintf("nice %d", n)) {
		t.Fatalf("pid %d's autogroup is %q (%v), want it niced %d", pid, ag, err, n)
	}
}

// cpuLoad saturates every CPU with stress-ng, for at most d (stress-ng's
// own --timeout), in a session of its own (its own autogroup, at nice 0);
// the test's cleanup stops it by its process group. It returns once the
// workers run.
func cpuLoad(t testing.TB, d time.Duration) {
	t.Helper()
	path, err := exec.LookPath("stress-ng")
	if err != nil {
		t.Fatalf("stress-ng is needed to load the CPUs (scripts/install-deps.sh installs it): %v", err)
	}
	workers := 2 * runtime.NumCPU()
	cmd := exec.Command(path, "--cpu", strconv.Itoa(workers), "--timeout", fmt.Sprintf("%ds", int(d.Seconds())), "--quiet")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group we made
		_ = cmd.Wait()
	})
	pollUntil(t, fmt.Sprintf("saw %d stress-ng workers", workers), func() bool { return len(children(cmd.Process.Pid)) >= workers })
}

// stallWatch notes when each "stall detected" line of pcheck's stderr was
// first seen, per service, and how much of its failing time pcheck did not
// count (not_counted: rounds it judged starved, not stalled).
type stallWatch struct {
	mu      sync.Mutex
	seen    map[string][]time.Time
	excused map[string][]time.Duration
	more    chan struct{}
}

var stallLine = regexp.MustCompile(`msg="stall detected" service=(\S+) .*? not_counted=(\S+)`)

func watchStalls(t testing.TB, p *pcheckRun) *stallWatch {
	w := &stallWatch{seen: map[string][]time.Time{}, excused: map[string][]time.Duration{}, more: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		excused := map[string][]time.Duration{}
		for {
			now := time.Now()
			for _, m := range stallLine.FindAllStringSubmatch(p.stderr.String(), -1) {
				d, err := time.ParseDuration(m[2])
				if err != nil {
					d = -1 // not a duration: no test can take it as excused
				}
				excused[m[1]] = append(excused[m[1]], d)
			}
			w.mu.Lock()
			for name, ds := range excused {
				for len(w.seen[name]) < len(ds) {
					w.seen[name] = append(w.seen[name], now)
				}
				w.excused[name] = ds
			}
			w.mu.Unlock()
			clear(excused)
			select {
			case w.more <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

// waitMore waits for the next pass over pcheck's stderr (10 ms apart).
func (w *stallWatch) waitMore(t testing.TB) {
	t.Helper()
	select {
	case <-w.more:
	case <-time.After(deadline):
		t.Fatal("pcheck's stderr is no longer read")
	}
}

// excusedFor is the failing time pcheck did not count in the i-th stall
// (from 0) of name, once seen (a value it logged that is not a duration:
// -1).
func (w *stallWatch) excusedFor(name string, i int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.excused[name][i]
}

// count is how many stalls of name were seen.
func (w *stallWatch) count(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen[name])
}

// wait returns when the i-th stall (from 0) of name was seen, waiting up
// to within.
func (w *stallWatch) wait(t testing.TB, name string, i int, within time.Duration) time.Time {
	t.Helper()
	deadline := time.After(within)
	for {
		w.mu.Lock()
		if len(w.seen[name]) > i {
			at := w.seen[name][i]
			w.mu.Unlock()
			return at
		}
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-deadline:
			t.Fatalf("no stall %d of %s within %v", i+1, name, within)
		}
	}
}

// checkOf is padmin's status of name's first stall-check block.
func checkOf(t testing.TB, p *pcheckRun, name string) control.CheckStatus {
	t.Helper()
	st, err := (&control.Client{Path: p.control}).Status(waitCtx(t), name)
	if err != nil || len(st) != 1 || len(st[0].Checks) == 0 {
		t.Fatalf("padmin status %s: %v %+v", name, err, st)
	}
	return st[0].Checks[0]
}

// waitCheck polls padmin status until name's first block is in state.
func waitCheck(t testing.TB, p *pcheckRun, name, state string) control.CheckStatus {
	t.Helper()
	var c control.CheckStatus
	pollUntil(t, fmt.Sprintf("saw %s's check %s", name, state), func() bool {
		c = checkOf(t, p, name)
		return c.State == state
	})
	return c
}
