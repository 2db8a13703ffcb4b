// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/pkg/control"
)

// The restart policy end to end (issue 12): backoff between attempts,
// re-arm after a retry over, hand starts adopted, the first start free.

// flakyScript wraps the server's restart script: its first n runs fail,
// the later ones start the server. Every run is recorded with the
// monotonic time it began (from /proc/uptime) and the PWATCH_ variables.
type flakyScript struct {
	path, runs string
}

func newFlakyScript(t *testing.T, dir string, n int) flakyScript {
	t.Helper()
	f := flakyScript{path: filepath.Join(dir, "flaky.restart"), runs: filepath.Join(dir, "flaky.runs")}
	writeFile(t, f.path, fmt.Sprintf(`#!/bin/sh
done=$(cat %[1]s 2>/dev/null | wc -l)
echo "$(cut -d' ' -f1 /proc/uptime) $PWATCH_REASON $PWATCH_ATTEMPT $PWATCH_ATTEMPTS_LEFT" >> %[1]s
[ "$done" -ge %[2]d ] || { echo "failing on purpose (run $((done+1)) of the first %[2]d)"; exit 1; }
exec "$@"
`, f.runs, n), 0o755)
	return f
}

// flakyRun is one recorded run of the script.
type flakyRun struct {
	at                    float64 // seconds, monotonic
	reason, attempt, left string
}

func (f flakyScript) read(t *testing.T) []flakyRun {
	t.Helper()
	b, err := os.ReadFile(f.runs)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []flakyRun
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		fs := strings.Fields(l)
		if len(fs) != 4 {
			t.Fatalf("bad run record %q", l)
		}
		at, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, flakyRun{at: at, reason: fs[1], attempt: fs[2], left: fs[3]})
	}
	return out
}

// policyPfile writes a pfile for srv with restart_script argv and extra
// keys, and returns its path.
func policyPfile(t *testing.T, srv *server, dir string, argv []string, keys ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "process %s\n", srv.exe)
	if srv.args != "" {
		fmt.Fprintf(&b, "args %s\n", srv.args)
	}
	fmt.Fprintf(&b, "restart_script %s\nrestart_timeout 30\ngrace 3600\nkill_timeout 1\n", strings.Join(argv, " "))
	for _, k := range keys {
		b.WriteString(k + "\n")
	}
	path := filepath.Join(dir, srv.kind+".pfile")
	writeFile(t, path, b.String(), 0o644)
	return path
}

func statusJSON(t *testing.T, p *pcheckRun, name string) control.ServiceStatus {
	t.Helper()
	out, err := exec.Command(bin.padmin, "--control-socket", p.control, "status", "--json", name).Output()
	if err != nil {
		t.Fatalf("padmin status --json: %v", err)
	}
	var st []control.ServiceStatus
	if err := json.Unmarshal(out, &st); err != nil || len(st) != 1 {
		t.Fatalf("padmin status --json printed %s: %v", out, err)
	}
	return st[0]
}

// TestBackoffRetryOverRearmUp: a restart script that fails 4 times then
// works. After the kill, the gaps between attempts grow (1 s, 2 s, then
// the 4 s cap before the retry over is declared), padmin status shows the
// budget and the re-arm, rearm_after later the service is tried again with
// its attempts reset, and it is Up.
func TestBackoffRetryOverRearmUp(t *testing.T) {
	const kind = "nginx"
	srv := newServer(t, kind)
	sc := newScene(t)
	flaky := newFlakyScript(t, sc.dir, 4)
	pf := policyPfile(t, srv, sc.dir, append([]string{flaky.path}, srv.script...),
		"retry_count 3", "retry_interval 1", "retry_backoff 2", "retry_interval_max 4", "rearm_after 3")
	master := srv.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, kind, master)
	if st := statusJSON(t, p, kind); st.AttemptsLeft != 3 || st.NextAttemptIn != nil || st.RearmIn != nil {
		t.Fatalf("adopted: %+v, want 3 attempts left, nothing due", st)
	}

	kill9(t, master)
	p.expectLines(t,
		down(kind, master), ended(kind, master, killedBy9),
		tryRestart(kind), setPidFail(kind),
		tryRestart(kind), setPidFail(kind),
		tryRestart(kind), setPidFail(kind),
		retryOver(kind, "continue"))
	p.waitState(t, kind, "RetryOver")
	var st control.ServiceStatus
	pollUntil(t, "padmin status shows the re-arm", func() bool {
		st = statusJSON(t, p, kind)
		return st.RearmIn != nil || st.State != "RetryOver"
	})
	if st.AttemptsLeft != 0 || st.RearmIn == nil || *st.RearmIn > 3 {
		t.Fatalf("retried over: %+v, want 0 attempts left and a re-arm within 3 s", st)
	}
	table, err := exec.Command(bin.padmin, "--control-socket", p.control, "status", kind).Output()
	if err != nil || !strings.Contains(string(table), "re-arm ") {
		t.Fatalf("padmin status: %v\n%s", err, table)
	}
	t.Logf("padmin status while retried over:\n%s", table)
	got, err := p.lines(waitCtx(t), 13)
	if err != nil {
		t.Fatal(err)
	}
	m := upLine.FindStringSubmatch(got[12])
	if got[9] != tryRestart(kind) || got[10] != setPidFail(kind) || got[11] != tryRestart(kind) || m == nil {
		t.Fatalf("after the re-arm pcheck logged %q, want %q, %q, %q, %q", got[9:], tryRestart(kind), setPidFail(kind), tryRestart(kind), up(kind, 0))
	}
	newPID, _ := strconv.Atoi(m[2])
	upWith(t, p, kind, newPID)
	if real := srv.waitMaster(t, master); real != newPID {
		t.Fatalf("Up with pid %d, the pid file says %d", newPID, real)
	}
	getHTTP(t, srv.url(), srv.token)

	runs := flaky.read(t)
	if len(runs) != 5 {
		t.Fatalf("the script ran %d times, want 5: %+v", len(runs), runs)
	}
	want := [][3]string{{"down", "1", "2"}, {"down", "2", "1"}, {"down", "3", "0"}, {"rearm", "1", "2"}, {"rearm", "2", "1"}}
	for i, r := range runs {
		if [3]string{r.reason, r.attempt, r.left} != want[i] {
			t.Errorf("run %d: PWATCH_REASON, _ATTEMPT, _ATTEMPTS_LEFT = %s %s %s, want %v", i+1, r.reason, r.attempt, r.left, want[i])
		}
	}
	// The least each gap must be: the pause (up to a tenth shorter by
	// jitter); between runs 3 and 4 the 4 s pause, then rearm_after.
	least := []float64{0.9, 1.8, 3.6 + 3, 0.9}
	for i, l := range least {
		if gap := runs[i+1].at - runs[i].at; gap < l-0.02 {
			t.Errorf("gap %d->%d was %.2fs, want at least %.2fs", i+1, i+2, gap, l)
		}
	}
	t.Logf("the script's runs (uptime s, reason, attempt, left): %+v", runs)
	t.Logf("pcheck's stderr:\n%s", p.stderr.String())
}

// TestHandStartDuringRetryOverIsAdopted: a service whose retries are over
// and that an operator starts by hand is adopted (Up, watched: its next
// death is seen), without a restart by pcheck.
func TestHandStartDuringRetryOverIsAdopted(t *testing.T) {
	const kind = "nginx"
	srv := newServer(t, kind)
	sc := newScene(t)
	pf := policyPfile(t, srv, sc.dir, srv.brokenScript, "retry_count 1")
	master := srv.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, kind, master)
	kill9(t, master)
	p.expectLines(t, down(kind, master), ended(kind, master, killedBy9), tryRestart(kind), setPidFail(kind), retryOver(kind, "continue"))
	p.waitState(t, kind, "RetryOver")

	byHand := srv.start(t)
	upWith(t, p, kind, byHand)
	if st := statusJSON(t, p, kind); st.Restarts != 0 || st.AttemptsLeft != 1 {
		t.Fatalf("adopted: %+v, want its attempts reset", st)
	}
	p.expectLines(t, down(kind, master), ended(kind, master, killedBy9), tryRestart(kind), setPidFail(kind), retryOver(kind, "continue"), up(kind, byHand))
	// stderr comes through a pipe of its own: wait for it.
	pollUntil(t, "the adoption line on stderr", func() bool { return strings.Contains(p.stderr.String(), "a start by hand") })
	kill9(t, byHand)
	p.expectLines(t, down(kind, master), ended(kind, master, killedBy9), tryRestart(kind), setPidFail(kind), retryOver(kind, "continue"), up(kind, byHand),
		down(kind, byHand), ended(kind, byHand, killedBy9))
}

// TestFirstStartLeavesRetryCountWhole: with retry_count 1, pcheck's start
// of a service that was not running uses up nothing: its first death is
// still restarted.
func TestFirstStartLeavesRetryCountWhole(t *testing.T) {
	const kind = "nginx"
	srv := newServer(t, kind)
	sc := newScene(t)
	pf := policyPfile(t, srv, sc.dir, srv.script, "retry_count 1")
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	got, err := p.lines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	m := upLine.FindStringSubmatch(got[1])
	if got[0] != tryRestart(kind) || m == nil {
		t.Fatalf("start: %q", got)
	}
	first, _ := strconv.Atoi(m[2])
	upWith(t, p, kind, first)
	if st := statusJSON(t, p, kind); st.Restarts != 0 || st.AttemptsLeft != 1 {
		t.Fatalf("after the first start: %+v, want 0 restarts and 1 attempt left", st)
	}
	pollUntil(t, "the first-start line on stderr", func() bool {
		return strings.Contains(p.stderr.String(), "first start of the service by pcheck: not a restart")
	})
	kill9(t, first)
	next := expectRestart(t, p, 2, srv, kind, first)
	upWith(t, p, kind, next)
}

// Issue 13 #4 end to end: padmin stop, then pcheck restarted (as systemd
// would after a crash or an upgrade): the service stays stopped, a death
// is not acted on; padmin start clears it.
func TestPadminStopSurvivesAPcheckRestart(t *testing.T) {
	const kind = "nginx"
	srv := newServer(t, kind)
	sc := newScene(t)
	pf := policyPfile(t, srv, sc.dir, srv.script)
	master := srv.start(t)
	first := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, first, kind, master)
	first.padmin(t, "stop", kind)
	first.waitState(t, kind, "Paused")
	first.stop()
	// The whole server, workers too: a dead master's orphaned workers are
	// another matter (issue 13 #3).
	srv.killAll()
	waitGone(t, master)

	second := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	second.waitState(t, kind, "Paused")
	second.padmin(t, "start", kind)
	got, err := second.lines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != tryRestart(kind) || upLine.FindStringSubmatch(got[1]) == nil {
		t.Fatalf("after padmin start: %q", got)
	}
	// The restart is the second pcheck's first line: nothing was acted on
	// before padmin start. The new master is the server's.
	m := upLine.FindStringSubmatch(got[1])
	newPID, _ := strconv.Atoi(m[2])
	if real := srv.waitMaster(t, master); real != newPID {
		t.Fatalf("Up with pid %d, the pid file says %d", newPID, real)
	}
}
