// SPDX-License-Identifier: Apache-2.0

package starve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeProc writes a proc tree: pid's threads with their run_delay (ns),
// and the cpu pressure total (µs).
func fakeProc(t *testing.T, root string, threads map[int]map[int]int64, psi int64) {
	t.Helper()
	for pid, tids := range threads {
		for tid, delay := range tids {
			dir := filepath.Join(root, fmt.Sprint(pid), "task", fmt.Sprint(tid))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "schedstat"), fmt.Appendf(nil, "123456 %d 42\n", delay), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "pressure"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("some avg10=1.00 avg60=0.50 avg300=0.10 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", psi)
	if err := os.WriteFile(filepath.Join(root, "pressure", "cpu"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestJudgeSumsThreadWaitsAndReadsPressure(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	const self, server = 10, 20
	// Thread 21 waits 300ms more, 22 is born with 250ms, 23 dies.
	fakeProc(t, a, map[int]map[int]int64{self: {10: 5e6, 11: 0}, server: {20: 1e9, 21: 2e9, 23: 7e9}}, 1_000_000)
	fakeProc(t, b, map[int]map[int]int64{self: {10: 6e6, 11: 2e6}, server: {20: 1e9, 21: 2.3e9, 22: 2.5e8}}, 1_500_000)
	pids := func() []int { return []int{server} }
	from := (&Meter{Proc: a, Self: self, PIDs: pids}).Sample()
	to := (&Meter{Proc: b, Self: self, PIDs: pids}).Sample()
	v := Judge(from, to, 2*time.Second)
	// The server's waits add up; pcheck's is its longest thread's.
	if v.ServerWait != 550*time.Millisecond || v.SelfWait != 2*time.Millisecond {
		t.Fatalf("waits server %v, self %v; want 550ms, 2ms", v.ServerWait, v.SelfWait)
	}
	if v.Pressure != 0.25 {
		t.Fatalf("pressure %v, want 0.25 (500ms of 2s)", v.Pressure)
	}
	why, starved := v.Starved()
	if !starved || !strings.Contains(why, "the server's threads waited 550ms for a CPU in 2s (host cpu pressure 25%)") {
		t.Fatalf("Starved() = %q, %v", why, starved)
	}
	// 550ms is less than a quarter of 3s.
	if why, starved := Judge(from, to, 3*time.Second).Starved(); starved {
		t.Fatalf("starved with 550ms of waiting in 3s: %q", why)
	}
}

func TestStarvedNeedsAWaitThatMatters(t *testing.T) {
	v := Verdict{Elapsed: time.Millisecond, SelfWait: time.Millisecond, ServerWait: 50 * time.Millisecond, Pressure: -1}
	if why, ok := v.Starved(); ok {
		t.Fatalf("waits under MinWait taken for starvation: %q", why)
	}
}

func TestStarvedSelf(t *testing.T) {
	v := Verdict{Elapsed: time.Second, SelfWait: 300 * time.Millisecond, Pressure: -1}
	if why, ok := v.Starved(); !ok || why != "a thread of pcheck waited 300ms for a CPU in 1s" {
		t.Fatalf("Starved() = %q, %v", why, ok)
	}
}

// Real threads: a process stopped with SIGSTOP waits on no run queue,
// whatever the load; this process's own threads are read.
func TestMeterRealProcesses(t *testing.T) {
	if _, err := os.Stat("/proc/self/task/" + fmt.Sprint(os.Getpid()) + "/schedstat"); err != nil {
		t.Skipf("no schedstat on this kernel: %v", err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, _ := os.ReadFile(stat)
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not stopped after SIGSTOP", cmd.Process.Pid)
		}
		runtime.Gosched()
	}
	m := &Meter{PIDs: func() []int { return []int{cmd.Process.Pid} }}
	from := m.Sample()
	if len(from.server) != 1 || len(from.self) < runtime.GOMAXPROCS(0)/2 {
		t.Fatalf("sample read %d server threads, %d of ours", len(from.server), len(from.self))
	}
	// A period to measure: keep a CPU busy for 50ms.
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
	}
	v := Judge(from, m.Sample(), time.Since(start))
	if v.ServerWait != 0 {
		t.Fatalf("a stopped process waited %v on a run queue", v.ServerWait)
	}
}
