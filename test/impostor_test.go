// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// Impostors (issue 21): a local user who runs the service's executable
// must not steer pcheck. A process is the service's only when its real uid
// is root or the pfile's user; a pidfile is believed only for such a
// process, and only where no one else could have written it.

// nobody (uid 65534, test/trust_test.go) is the unprivileged local user.

// impostorRig is a sleeper service whose restart script works only while
// its gate file exists, in a directory uid 65534 can reach.
type impostorRig struct {
	sc   *scene
	s    *sleeper
	gate string
	pf   string
}

func newImpostorRig(t *testing.T, name string, keys ...string) *impostorRig {
	t.Helper()
	sc := newScene(t)
	if err := os.Chmod(sc.dir, 0o755); err != nil { // nobody must reach the executable
		t.Fatal(err)
	}
	r := &impostorRig{sc: sc, s: newSleeper(t, sc.dir, name), gate: filepath.Join(sc.dir, name+".gate")}
	script := filepath.Join(sc.dir, name+".gated")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\n[ -e %s ] || { echo 'gate closed: failing on purpose'; exit 1; }\nexec %s\n", r.gate, r.s.script), 0o755)
	r.pf = r.s.writePfile(t, sc.dir, script, append([]string{"restart_timeout 30", "kill_timeout 1", "grace 3600"}, keys...)...)
	return r
}

func (r *impostorRig) open(t *testing.T) { writeFile(t, r.gate, "", 0o644) }
func (r *impostorRig) close(t *testing.T) {
	if err := ignoreGone(os.Remove(r.gate)); err != nil {
		t.Fatal(err)
	}
}

// startAs runs exe with args as uid (and gid) and returns the process once
// it runs exe; the test's cleanup kills it.
func startAs(t *testing.T, uid uint32, exe string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	pollUntil(t, fmt.Sprintf("saw pid %d run %s", pid, exe), func() bool {
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return err == nil && got == exe
	})
	return cmd
}

// realUID is pid's real uid (-1 when it cannot be read).
func realUID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	return -1
}

// upPIDOf checks that line is the service's Up and returns its pid, which
// must be root's.
func upPIDOf(t *testing.T, line, name string) int {
	t.Helper()
	m := upLine.FindStringSubmatch(line)
	if m == nil || m[1] != name {
		t.Fatalf("pcheck logged %q, want %s Up", line, name)
	}
	pid, _ := strconv.Atoi(m[2])
	if uid := realUID(pid); uid != 0 {
		t.Fatalf("pcheck took pid %d (uid %d) for %s: only root's processes are its", pid, uid, name)
	}
	return pid
}

// TestImpostorIsNotTheService: uid 65534 runs the service's executable. At
// pcheck's start it is not adopted (pcheck starts the real service); its
// exit counts for nothing; during the pause after a failed restart it is
// not taken for a start by hand, while root's start by hand is; and pcheck
// never signals it.
func TestImpostorIsNotTheService(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	for _, tc := range []struct {
		watcher string // ebpf: exec events and Among; pidfd: scans
		atStart bool   // an impostor runs when pcheck starts; else only in the pause
	}{{"ebpf", true}, {"pidfd", true}, {"ebpf", false}} {
		t.Run(fmt.Sprintf("%s/impostor_at_start=%v", tc.watcher, tc.atStart), func(t *testing.T) {
			t.Parallel()
			watcher := tc.watcher
			name := fmt.Sprintf("impostor-%s-%v", watcher, tc.atStart)
			r := newImpostorRig(t, name, "retry_count 5", "retry_interval 3600")
			var first *exec.Cmd
			if tc.atStart {
				first = startAs(t, nobody, r.s.exe, "100000")
			}
			r.open(t)
			p := startPcheck(t, r.sc.syslog, r.sc.dir, watcher, r.pf)

			// At start: the impostor is no running service, so pcheck
			// starts the real one.
			got, err := p.lines(waitCtx(t), 2)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != tryRestart(name) {
				t.Fatalf("pcheck logged %q first, want %q: uid %d's process was taken for the running service", got[0], tryRestart(name), nobody)
			}
			real := upPIDOf(t, got[1], name)

			// Its exit is no death of the service: the next lines are
			// the real one's.
			if first != nil {
				_ = first.Process.Kill()
				_ = first.Wait()
			}
			r.close(t) // the restart after the next death fails: a pause of an hour
			kill9(t, real)
			got, err = p.lines(waitCtx(t), 6)
			if err != nil {
				t.Fatal(err)
			}
			// pidfd sees the status only if init has not reaped the zombie yet.
			endings := []string{ended(name, real, killedBy9), ended(name, real, "exited (status unknown)")}
			if got[2] != down(name, real) || !slices.Contains(endings, got[3]) || got[4] != tryRestart(name) || got[5] != setPidFail(name) {
				t.Fatalf("pcheck logged %q\nwant the death of root's %d (%q, one of %q), then %q, %q",
					got, real, down(name, real), endings, tryRestart(name), setPidFail(name))
			}

			// In the pause, the impostor is no start by hand; root's is.
			second := startAs(t, nobody, r.s.exe, "100000")
			byHand := startAs(t, 0, r.s.exe, "100000")
			got, err = p.lines(waitCtx(t), 7)
			if err != nil {
				t.Fatal(err)
			}
			if pid := upPIDOf(t, got[6], name); pid != byHand.Process.Pid {
				t.Fatalf("adopted pid %d by hand, want root's %d", pid, byHand.Process.Pid)
			}
			st := p.waitState(t, name, "Up")
			if !slices.Equal(st.PIDs, []int{byHand.Process.Pid}) {
				t.Errorf("pcheck watches %v, want only root's %d (uid %d's is %d)", st.PIDs, byHand.Process.Pid, nobody, second.Process.Pid)
			}
			if !alive(second.Process.Pid) {
				t.Errorf("uid %d's process %d was signalled", nobody, second.Process.Pid)
			}
			if extra := p.allLines()[7:]; len(extra) != 0 {
				t.Errorf("more lines after the start by hand: %q", extra)
			}
		})
	}
}

// TestPIDFileNamesOnlyTheService: a pidfile naming uid 65534's process of
// the executable, or an older root process that is not the service, is not
// believed: pcheck starts the service and leaves both alone. A pidfile in
// a directory others can write refuses the load.
func TestPIDFileNamesOnlyTheService(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "pidfile"
	r := newImpostorRig(t, name)
	run := filepath.Join(r.sc.dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(run, name+".pid")
	// The sleeper's start writes the pid of the server it starts.
	if err := os.Remove(r.s.script); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.s.script, fmt.Sprintf("#!/bin/sh\nexec setsid -f /bin/sh -c 'echo $$ > %s; exec %s 100000' </dev/null >/dev/null 2>&1\n", pidfile, r.s.exe), 0o755)
	r.pf = r.s.writePfile(t, r.sc.dir, filepath.Join(r.sc.dir, name+".gated"), "restart_timeout 30", "kill_timeout 1", "pidfile "+pidfile)
	r.open(t)

	impostor := startAs(t, nobody, r.s.exe, "100000")
	older := startAs(t, 0, "/usr/bin/sleep", "100000") // root's, not the service
	for _, decoy := range []*exec.Cmd{impostor, older} {
		writeFile(t, pidfile, strconv.Itoa(decoy.Process.Pid)+"\n", 0o644)
		p := startPcheck(t, r.sc.syslog, r.sc.dir, "ebpf", r.pf)
		got, err := p.lines(waitCtx(t), 2)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != tryRestart(name) {
			t.Fatalf("pcheck logged %q first, want %q: it believed the pidfile naming %d", got[0], tryRestart(name), decoy.Process.Pid)
		}
		real := upPIDOf(t, got[1], name)
		if real == decoy.Process.Pid {
			t.Fatalf("the decoy %d was taken for the service", real)
		}
		p.stop() // the service is left running
		kill9(t, real)
		waitGone(t, real)
		if !alive(decoy.Process.Pid) {
			t.Errorf("the decoy %d named by the pidfile was signalled", decoy.Process.Pid)
		}
	}

	// A directory anyone can write: the load is refused, naming where.
	if err := os.Chmod(run, 0o777); err != nil {
		t.Fatal(err)
	}
	p := startPcheck(t, r.sc.syslog, r.sc.dir, "ebpf", r.pf)
	status, err := p.waitExit(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s:5:9: pidfile: its directory %s is writable by others (mode 0777)", r.pf, run)
	if status != 1 || !strings.Contains(p.stderr.String(), want) {
		t.Errorf("pcheck exit status %d, stderr:\n%s\nwant 1 and %q", status, p.stderr.String(), want)
	}
}
