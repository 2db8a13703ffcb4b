// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/pkg/control"
)

// Helpers of the reboot and reload scenarios (reboot_test.go,
// reload_test.go).

func rebootThresholdReached(name string) string {
	return fmt.Sprintf("Reboot threshold reached ('%s')", name)
}

// startPcheckFlags starts pcheck as startPcheck does, with flags added
// after the harness's own, and stderr as JSON lines (see stderrRecord). A
// flag given twice takes its last value, so --state-dir here replaces the
// harness's. The backend is auto: these scenarios are not about it.
func startPcheckFlags(t testing.TB, sc *scene, flags []string, pfiles ...string) *pcheckRun {
	t.Helper()
	args := append([]string{"--log-format", "json"}, flags...)
	return startPcheck(t, sc.syslog, sc.dir, "auto", append(args, pfiles...)...)
}

// rebootRig replaces the reboot command with a script that records its
// calls, one line each, and keeps the reboot guard's state in a directory
// that outlives every pcheck of a test: starting a new pcheck on it is a
// simulated reboot. Every pcheck a reboot scenario starts goes through
// boot, so none can run the real reboot command.
type rebootRig struct {
	sc       *scene
	stateDir string
	calls    string // the record of the reboot command's calls
	command  string // --reboot-command
}

func newRebootRig(t testing.TB, sc *scene) *rebootRig {
	t.Helper()
	r := &rebootRig{
		sc:       sc,
		stateDir: filepath.Join(sc.dir, "guard"),
		calls:    filepath.Join(sc.dir, "reboot-calls"),
		command:  filepath.Join(sc.dir, "record-reboot"),
	}
	writeFile(t, r.command, fmt.Sprintf("#!/bin/sh\necho \"reboot requested by pcheck[$PPID]\" >> %s\n", r.calls), 0o755)
	return r
}

// statePath is the guard's state file.
func (r *rebootRig) statePath() string { return filepath.Join(r.stateDir, "reboots") }

// boot starts a pcheck with this rig's guard: threshold reboots at most
// within window seconds.
func (r *rebootRig) boot(t testing.TB, threshold, window int, pfiles ...string) *pcheckRun {
	t.Helper()
	return startPcheckFlags(t, r.sc, r.flags(threshold, window), pfiles...)
}

// flags are the pcheck flags of this rig's guard.
func (r *rebootRig) flags(threshold, window int) []string {
	return []string{
		"--state-dir", r.stateDir, "--reboot-command", r.command,
		"--reboot-threshold", strconv.Itoa(threshold), "--reboot-window", strconv.Itoa(window),
	}
}

// reboot ends p as the node's reboot would (SIGTERM); it must end cleanly.
func (r *rebootRig) reboot(t testing.TB, p *pcheckRun) {
	t.Helper()
	p.stop()
	if p.status != 0 {
		t.Fatalf("pcheck[%d] ended with status %d on SIGTERM, want 0", p.pid(), p.status)
	}
}

// count is the number of reboot-command calls recorded so far.
func (r *rebootRig) count(t testing.TB) int {
	t.Helper()
	data, err := os.ReadFile(r.calls)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// waitCount waits until n calls are recorded; more is a failure at once.
func (r *rebootRig) waitCount(t testing.TB, n int) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("recorded %d reboot-command calls", n), func() bool {
		got := r.count(t)
		if got > n {
			t.Fatalf("%d reboot-command calls recorded, want %d", got, n)
		}
		return got == n
	})
}

// expectCount checks that exactly n calls are recorded.
func (r *rebootRig) expectCount(t testing.TB, n int) {
	t.Helper()
	if got := r.count(t); got != n {
		t.Fatalf("%d reboot-command calls recorded, want %d", got, n)
	}
}

// sleeper is a service made of one copy of sleep(1) of its own (so that
// its pfile matches no other test's sleep), which its restart script starts
// detached, as a daemon's script would.
type sleeper struct {
	name   string
	exe    string
	script string
}

func newSleeper(t testing.TB, dir, name string) *sleeper {
	t.Helper()
	s := &sleeper{name: name, exe: filepath.Join(dir, name+"-sleep"), script: filepath.Join(dir, name+".start")}
	copyFile(t, "/usr/bin/sleep", s.exe)
	writeFile(t, s.script, fmt.Sprintf("#!/bin/sh\nexec setsid -f %s 100000 </dev/null >/dev/null 2>&1\n", s.exe), 0o755)
	t.Cleanup(func() { killExe(s.exe) })
	return s
}

// writePfile writes NAME.pfile into dir: the sleeper's process, script as
// its restart_script ("" for the sleeper's own), then keys, one per line.
func (s *sleeper) writePfile(t testing.TB, dir, script string, keys ...string) string {
	t.Helper()
	if script == "" {
		script = s.script
	}
	lines := append([]string{"process " + s.exe, "restart_script " + script}, keys...)
	path := filepath.Join(dir, s.name+".pfile")
	writeFile(t, path, strings.Join(lines, "\n")+"\n", 0o644)
	return path
}

// start runs the restart script by hand, as an operator would, and
// returns the one process it started.
func (s *sleeper) start(t testing.TB) int {
	t.Helper()
	if out, err := exec.Command(s.script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", s.script, err, out)
	}
	var pids []int
	pollUntil(t, "saw "+s.exe+" run", func() bool {
		pids = s.pids()
		return len(pids) > 0
	})
	if len(pids) != 1 {
		t.Fatalf("%s runs as %v, want one process", s.exe, pids)
	}
	return pids[0]
}

// pids lists the running processes of the sleeper's executable.
func (s *sleeper) pids() []int { return pidsWhere(runs(s.exe)) }

// expectSleeperRestart checks that pcheck's lines from first are the death
// of old by SIGKILL and a restart, and that the new pid it names is the
// sleeper's one process. It returns that pid.
func expectSleeperRestart(t *testing.T, p *pcheckRun, first int, s *sleeper, old int) int {
	t.Helper()
	got, err := p.lines(waitCtx(t), first+4)
	if err != nil {
		t.Fatal(err)
	}
	got = got[first:]
	// The proc backend, should auto fall back to it, sees the status only
	// if the zombie is still unreaped when it looks.
	endings := []string{killedBy9, "exited (status unknown)"}
	m := upLine.FindStringSubmatch(got[3])
	if got[0] != down(s.name, old) || !slices.ContainsFunc(endings, func(e string) bool { return got[1] == ended(s.name, old, e) }) || got[2] != tryRestart(s.name) || m == nil || m[1] != s.name {
		t.Fatalf("pcheck logged:\n\t%q\nwant %q, one of %q, %q, %q",
			got, down(s.name, old), endings, tryRestart(s.name), up(s.name, 0))
	}
	pid, _ := strconv.Atoi(m[2])
	if real := s.pids(); !slices.Equal(real, []int{pid}) {
		t.Fatalf("pcheck says %s is up with pid %d; %s runs as %v", s.name, pid, s.exe, real)
	}
	return pid
}

// padminResult is what one padmin run printed (stdout and stderr) and its
// exit status.
type padminResult struct {
	pid  int
	code int
	out  string
}

// runPadmin runs padmin against p with args; unlike p.padmin, a failure is
// a result, not a test failure.
func (p *pcheckRun) runPadmin(t testing.TB, args ...string) padminResult {
	t.Helper()
	all := append([]string{"--control-socket", p.control, "--syslog-socket", p.syslog.Path()}, args...)
	cmd := exec.Command(bin.padmin, all...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("padmin %s: %v", strings.Join(args, " "), err)
	}
	return padminResult{pid: cmd.Process.Pid, code: cmd.ProcessState.ExitCode(), out: out.String()}
}

// padminOK runs padmin against p with args; it must succeed. It returns
// what padmin printed.
func (p *pcheckRun) padminOK(t testing.TB, args ...string) padminResult {
	t.Helper()
	r := p.runPadmin(t, args...)
	if r.code != 0 {
		t.Fatalf("padmin %s: exit status %d\n%s", strings.Join(args, " "), r.code, r.out)
	}
	return r
}

// serviceNames are the services `padmin status --json` lists.
func (p *pcheckRun) serviceNames(t testing.TB) []string {
	t.Helper()
	var st []control.ServiceStatus
	out := p.padminOK(t, "status", "--json").out
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("padmin status --json: %v\n%s", err, out)
	}
	names := make([]string, len(st))
	for i, s := range st {
		names[i] = s.Name
	}
	return names
}

// stderrRecord is one JSON line pcheck wrote to stderr (--log-format json).
type stderrRecord struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	raw   string
}

// waitStderr waits until pcheck writes a stderr line at level whose text
// holds every one of substrs, and returns it.
func (p *pcheckRun) waitStderr(t testing.TB, level string, substrs ...string) stderrRecord {
	t.Helper()
	var found stderrRecord
	pollUntil(t, fmt.Sprintf("saw pcheck[%d] write a %s line holding %q", p.pid(), level, substrs), func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			rec := stderrRecord{raw: sc.Text()}
			if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Level != level {
				continue
			}
			if !slices.ContainsFunc(substrs, func(s string) bool { return !strings.Contains(rec.raw, s) }) {
				found = rec
				return true
			}
		}
		return false
	})
	return found
}
