// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// slack is what a bound of real time is allowed beyond its theory: the
// wake-up of a timer and of this test's poll of pcheck's stderr (10 ms),
// on a host whose CPUs may be saturated.
const slack = time.Second

// TestStarvedNotStalled: with every CPU saturated (stress-ng) and the
// servers at nice 19 in autogroups niced 19:
//   - "slow" burns 500 ms of CPU for three requests in a row, then answers
//     one at once: starved, each burning probe misses its 3 s timeout, so
//     three rounds in a row fail (30 s > duration 20 s: a stall on
//     pcheck's clock alone). Its threads wait on the run queue meanwhile:
//     no stall within 3 x duration.
//   - "stopped", SIGSTOPped, waits on no run queue: stalled within
//     duration + 1 interval, each time (restarted and stopped again until
//     "slow" has been watched for 3 x duration).
//   - "spin", in a busy loop answering nothing, is starved too: stalled
//     within 2 x duration + 1 interval.
//
// Not parallel: the load would disturb the timing of other tests.
func TestStarvedNotStalled(t *testing.T) {
	testpriv.Root(t)
	const (
		interval = 10 * time.Second
		duration = 20 * time.Second
	)
	slow := newDemo(t, false, "-work", "500ms", "-work-runs", "3")
	stopped, spin := newDemo(t, false), newDemo(t, false)
	sc := newScene(t)
	check := func(port int) stallCheck {
		return stallCheck{lib: "webserv", interval: 10, duration: 20, timeout: 3, port: port}
	}
	var pfs []string
	pids := map[string]int{}
	for name, d := range map[string]*demoServer{"slow": slow, "stopped": stopped, "spin": spin} {
		d.niced(t, 19)
		pfs = append(pfs, d.writePfile(t, sc.dir, name, check(d.port)))
		pids[name] = d.run(t)
		expectNiced(t, pids[name], 19)
	}
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pfs...)
	for name, pid := range pids {
		upWith(t, p, name, pid)
		waitCheck(t, p, name, "ok")
	}
	stalls := watchStalls(t, p)

	// Enough load for the whole test: 3 x duration and the last stall.
	cpuLoad(t, 3*duration+2*interval+20*time.Second)
	probes, stopSampling := sampleProbes(p, "slow")

	hang := time.Now()
	stopAll(t, []int{pids["stopped"]})
	sendSignal(t, pids["spin"], syscall.SIGWINCH)
	spinHang := hang
	start := hang

	var cycles []time.Duration
	for time.Since(start) < 3*duration {
		at := stalls.wait(t, "stopped", len(cycles), duration+interval+slack+deadline)
		took := at.Sub(hang)
		cycles = append(cycles, took)
		if took > duration+interval+slack {
			t.Errorf("stopped server stalled %v after SIGSTOP under load, want within %v", took, duration+interval)
		}
		next := stopped.waitPID(t, pids["stopped"])
		upWith(t, p, "stopped", next)
		expectNiced(t, next, 19)
		stopAll(t, []int{next})
		hang, pids["stopped"] = time.Now(), next
	}
	spinAt := stalls.wait(t, "spin", 0, 2*duration+interval+slack)
	stopSampling()

	if n := stalls.count("slow"); n != 0 {
		t.Fatalf("the starved but answering server was taken for stalled %d times within %v", n, time.Since(start).Round(time.Second))
	}
	// The premise: slow did fail, and those failures were not counted.
	out := p.stderr.String()
	notCounted := regexp.MustCompile(`msg="stall check failure not counted: starved, not stalled" service=slow .*why="([^"]*)"`)
	m := notCounted.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		t.Fatalf("no failure of slow was excused as starvation: the test's premise fails\n%s", out)
	}
	var excused time.Duration
	for _, r := range regexp.MustCompile(`msg="stall check recovered" service=slow .*not_counted=(\S+)`).FindAllStringSubmatch(out, -1) {
		d, _ := time.ParseDuration(r[1])
		excused += d
	}
	t.Logf("under load: slow's worst successful probe %.2fs, worst of all %.2fs (timeout 3s); %v of its failure time not counted (%d not-counted lines, first: %s)",
		probes.worstOK, probes.worst, excused, len(m), m[0][1])
	t.Logf("stopped: SIGSTOP to stall %v; spin: busy loop to stall %v", cycles, spinAt.Sub(spinHang).Round(time.Millisecond))
	if excused == 0 {
		t.Errorf("slow recovered with no failure time not counted")
	}
}

// probeSamples are name's probes as padmin status showed them, polled
// every second (each round's time stays shown for an interval).
type probeSamples struct {
	mu             sync.Mutex
	worstOK, worst float64 // the slowest successful probe, the slowest of all
}

// sampleProbes polls padmin status for name's last probe until the
// returned stop is called.
func sampleProbes(p *pcheckRun, name string) (*probeSamples, func()) {
	s := &probeSamples{}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(time.Second):
			}
			// Not checkOf: t.Fatal is for the test's goroutine.
			st, err := (&control.Client{Path: p.control}).Status(context.Background(), name)
			if err != nil || len(st) != 1 || len(st[0].Checks) == 0 {
				continue // pcheck answers the next time, or the test fails anyway
			}
			c := st[0].Checks[0]
			s.mu.Lock()
			s.worst = max(s.worst, c.LastProbeSeconds)
			if c.OK {
				s.worstOK = max(s.worstOK, c.LastProbeSeconds)
			}
			s.mu.Unlock()
		}
	}()
	return s, func() { close(quit); <-done }
}

// TestStallBusyLoopIdleNode: a server spinning in a loop and answering
// nothing, with a CPU to itself, waits on no run queue: stalled within
// duration + 1 interval. The node is idle for it whatever else the host
// runs (other tests, other jobs): it runs at nice -20 in an autogroup
// niced -20.
func TestStallBusyLoopIdleNode(t *testing.T) {
	t.Parallel()
	const duration, interval = 20 * time.Second, 10 * time.Second
	d := newDemo(t, false)
	d.niced(t, -20)
	sc := newScene(t)
	pf := d.writePfile(t, sc.dir, "spin", stallCheck{lib: "webserv", interval: 10, duration: 20, timeout: 3, port: d.port})
	pid := d.run(t)
	expectNiced(t, pid, -20)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "spin", pid)
	waitCheck(t, p, "spin", "ok")
	stalls := watchStalls(t, p)
	hang := time.Now()
	sendSignal(t, pid, syscall.SIGWINCH)
	at := stalls.wait(t, "spin", 0, duration+interval+slack+deadline)
	if took := at.Sub(hang); took > duration+interval+slack {
		t.Fatalf("busy loop stalled %v after it began, want within %v", took, duration+interval)
	}
	next := expectStallRecovery(t, p, 0, "spin", webStall(pid, d.port), pid)
	d.expectRestarted(t, pid, next)
}

// TestStallStartingSlowBind: a restarted server that takes 5 s to bind is
// starting, not failing: no "failing" line, padmin shows it starting, then
// ok; and its checks go on: hung, it fails and is stalled.
func TestStallStartingSlowBind(t *testing.T) {
	t.Parallel()
	d := newDemo(t, false, "-bind-delay", "5s")
	sc := newScene(t)
	pf := d.writePfile(t, sc.dir, "slowbind", stallCheck{lib: "webserv", interval: 10, duration: 20, timeout: 2, port: d.port})
	pid := d.run(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "slowbind", pid)
	waitCheck(t, p, "slowbind", "ok")

	kill9(t, pid)
	got, err := p.lines(waitCtx(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{down("slowbind", pid), ended("slowbind", pid, killedBy9), tryRestart("slowbind")}; !slices.Equal(got[:3], want) || !upLine.MatchString(got[3]) {
		t.Fatalf("pcheck logged %q, want %q and Up", got, want)
	}
	// Starting from Up, before the first probe too; once the first probe
	// has failed (the server still binding) it says since when.
	var c control.CheckStatus
	pollUntil(t, "saw slowbind's starting check fail", func() bool {
		c = checkOf(t, p, "slowbind")
		if c.State != "starting" {
			t.Fatalf("the check of a server still binding is %q, want starting: %+v", c.State, c)
		}
		return c.FailingSince != nil
	})
	next := d.waitPID(t, pid) // written once it listens
	waitCheck(t, p, "slowbind", "ok")
	upWith(t, p, "slowbind", next)
	if strings.Contains(p.stderr.String(), `msg="stall check failing"`) {
		t.Fatalf("a failing line for a server still binding:\n%s", p.stderr.String())
	}
	if lines := p.allLines(); len(lines) != 4 {
		t.Fatalf("pcheck logged %d lines, want the restart's 4:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
	}

	// The checks go on.
	sendSignal(t, next, syscall.SIGUSR1)
	c = waitCheck(t, p, "slowbind", "failing")
	if c.FailingSince == nil {
		t.Errorf("failing block says no since when: %+v", c)
	}
	pollUntil(t, "saw the failing line", func() bool {
		return strings.Contains(p.stderr.String(), `msg="stall check failing" service=slowbind`)
	})
	expectStallRecovery(t, p, 4, "slowbind", webStall(next, d.port), next)
}

// TestStallHangToStallSpread: ten servers with interval 10, duration 10
// and the probe timeout 10 (a probe in flight when the duration runs out),
// SIGSTOPped a second apart, so at every phase of the round grid: each is
// stalled within duration + 1 interval of its stop, not the interval +
// duration + timeout a stall decided at a round's end would take.
func TestStallHangToStallSpread(t *testing.T) {
	t.Parallel()
	testpriv.Root(t)
	const n, duration, interval = 10, 10 * time.Second, 10 * time.Second
	sc := newScene(t)
	var (
		ds   []*demoServer
		pfs  []string
		pids []int
	)
	for i := range n {
		d := newDemo(t, false)
		ds = append(ds, d)
		pfs = append(pfs, d.writePfile(t, sc.dir, fmt.Sprintf("hang%d", i), stallCheck{lib: "webserv", interval: 10, duration: 10, timeout: 10, port: d.port}))
		pids = append(pids, d.run(t))
	}
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pfs...)
	for i, pid := range pids {
		upWith(t, p, fmt.Sprintf("hang%d", i), pid)
		waitCheck(t, p, fmt.Sprintf("hang%d", i), "ok")
	}
	stalls := watchStalls(t, p)
	start := time.Now()
	hangs := make([]time.Time, n)
	for i, pid := range pids {
		// A second apart, from the same start: the phases cover the grid.
		for time.Since(start) < time.Duration(i)*time.Second {
			stalls.waitMore(t)
		}
		stopAll(t, []int{pid})
		hangs[i] = time.Now()
	}
	spread := make([]time.Duration, n)
	var excusedAny []string
	for i := range n {
		name := fmt.Sprintf("hang%d", i)
		at := stalls.wait(t, name, 0, duration+interval+slack+deadline+n*interval)
		spread[i] = at.Sub(hangs[i]).Round(10 * time.Millisecond)
		// Rounds pcheck judged starved (a loaded CI host: pcheck's own
		// threads waited for a CPU) are not counted, by design: each
		// moves the stall on by the time not counted, which its line says.
		excused := stalls.excusedFor(name, 0)
		if excused < 0 {
			t.Fatalf("%s: the stall's not_counted is not a duration:\n%s", name, p.stderr.String())
		}
		if excused > 0 {
			excusedAny = append(excusedAny, fmt.Sprintf("%s %v", name, excused))
		}
		lo, hi := duration+excused, duration+interval+excused
		if spread[i] > hi+slack || spread[i] < lo-slack {
			t.Errorf("%s: stalled %v after SIGSTOP, want within [%v, %v] (%v not counted)", name, spread[i], lo, hi, excused)
		}
	}
	lo, hi := slices.Min(spread), slices.Max(spread)
	t.Logf("hang to stall over %d runs (interval 10s, duration 10s, timeout 10s): %v; min %v, max %v; not counted (starved): %v", n, spread, lo, hi, excusedAny)
}
