// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
)

// The syslog lines, written out here rather than taken from pkg/msg, so that
// a change of the catalogue's wording fails these tests: log watchers match
// these texts.
func down(name string, pid int) string { return fmt.Sprintf("Process ['%s',pid=%d] Down", name, pid) }
func up(name string, pid int) string   { return fmt.Sprintf("('%s',pid=%d) Up", name, pid) }
func tryRestart(name string) string    { return fmt.Sprintf("Try to restart ('%s')", name) }
func setPidFail(name string) string    { return fmt.Sprintf("Set pid fail ('%s')", name) }
func retryOver(name, action string) string {
	return fmt.Sprintf("Retry over ('%s') action=%s", name, action)
}
func command(cmd, name string) string {
	return fmt.Sprintf("Command execute. [%s] pfile='%s'", cmd, name)
}

const killedBy9 = "killed by signal 9 (SIGKILL)"

// stallKilled is how a stall check's kill ends, on every backend.
const stallKilled = killedBy9 + ", sent by pcheck (stall check)"

// ended is the line after Down: the service, the pid and the cause.
func ended(name string, pid int, cause string) string {
	return fmt.Sprintf("Process ['%s',pid=%d] %s", name, pid, cause)
}

// senderSuffix is the sender of a signal, as ebpf names it.
var senderSuffix = regexp.MustCompile(`, sent by pid \d+ \([^)]*, uid \d+\)$`)

// withoutSender drops the sender a backend may name, for the tests that do
// not test it (the sender of the test's own kills is the test binary).
func withoutSender(line string) string { return senderSuffix.ReplaceAllString(line, "") }

var upLine = regexp.MustCompile(`^\('([^']+)',pid=(\d+)\) Up$`)

// scene is one test's pcheck, its syslog and its pfile directory.
type scene struct {
	dir    string
	syslog *syslogtest.Server
}

func newScene(t testing.TB) *scene {
	dir := shortDir(t)
	return &scene{dir: dir, syslog: syslogtest.ListenAt(t, filepath.Join(dir, "log"))}
}

// expectRestart checks that pcheck logged, from its line first, the death
// of master by SIGKILL and a restart, and that the new master it names is
// the server's real one, which answers HTTP. It returns the new master.
func expectRestart(t *testing.T, p *pcheckRun, first int, srv *server, name string, master int) int {
	t.Helper()
	return expectRestartEnding(t, p, first, srv, name, master, killedBy9)
}

func expectRestartEnding(t *testing.T, p *pcheckRun, first int, srv *server, name string, master int, endings ...string) int {
	t.Helper()
	got, err := p.lines(waitCtx(t), first+4)
	if err != nil {
		t.Fatal(err)
	}
	got = got[first:]
	m := upLine.FindStringSubmatch(got[3])
	if got[0] != down(name, master) || !slices.ContainsFunc(endings, func(e string) bool { return got[1] == ended(name, master, e) }) || got[2] != tryRestart(name) || m == nil || m[1] != name {
		t.Fatalf("pcheck logged:\n\t%q\nwant %q, one of %q, %q, %q",
			got, down(name, master), endings, tryRestart(name), up(name, 0))
	}
	newPID, _ := strconv.Atoi(m[2])
	if real := srv.waitMaster(t, master); real != newPID {
		t.Fatalf("pcheck says %s is up with pid %d, the pid file says %d", name, newPID, real)
	}
	getHTTP(t, srv.url(), srv.token)
	return newPID
}

// upWith waits until pcheck has name Up with exactly the pid master.
func upWith(t *testing.T, p *pcheckRun, name string, master int) {
	t.Helper()
	st := p.waitState(t, name, "Up")
	if !slices.Equal(st.PIDs, []int{master}) {
		t.Fatalf("%s is Up with pids %v, want [%d] (its master only)", name, st.PIDs, master)
	}
}

// TestKillMaster: kill -9 of the master is Down, the restart script runs,
// the service is Up with a new master that answers HTTP; with every
// death-detection backend.
func TestKillMaster(t *testing.T) {
	for _, kind := range kinds {
		for _, watcher := range []string{"ebpf", "netlink", "pidfd", "proc"} {
			t.Run(kind+"/"+watcher, func(t *testing.T) {
				t.Parallel()
				srv := newServer(t, kind)
				sc := newScene(t)
				pf := srv.writePfile(t, sc.dir, pfileOpts{})
				master := srv.start(t)
				p := startPcheck(t, sc.syslog, sc.dir, watcher, pf)
				upWith(t, p, kind, master)

				kill9(t, master)
				endings := []string{killedBy9}
				if watcher == "proc" {
					// Polling sees the status only if the zombie is still
					// unreaped when it looks.
					endings = append(endings, "exited (status unknown)")
				}
				next := expectRestartEnding(t, p, 0, srv, kind, master, endings...)
				upWith(t, p, kind, next)
			})
		}
	}
}

// TestKillWorker: a worker killed is the server's business (its master
// replaces it): pcheck logs nothing. The sentinel is a kill of the master
// afterwards: its Down must be pcheck's first line, and the restart must
// work although the master's workers are no longer those pcheck saw when it
// adopted the service (the new worker, orphaned, must not keep the port).
func TestKillWorker(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, kind)
			sc := newScene(t)
			pf := srv.writePfile(t, sc.dir, pfileOpts{})
			master := srv.start(t)
			p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
			upWith(t, p, kind, master)

			before := srv.workers(t, master)
			kill9(t, before[0])
			waitGone(t, before[0])
			// The master replaces its worker: a child it did not have when
			// pcheck adopted it.
			pollUntil(t, fmt.Sprintf("saw %s master %d replace worker %d", kind, master, before[0]), func() bool {
				for _, c := range children(master) {
					if !slices.Contains(before, c) {
						return true
					}
				}
				return false
			})
			getHTTP(t, srv.url(), srv.token)
			upWith(t, p, kind, master)

			kill9(t, master)
			expectRestart(t, p, 0, srv, kind, master)
		})
	}
}

// TestRetryOver: a restart script that fails is Set pid fail, retried
// retry_count times, then Retry over with the action: continue leaves the
// service unwatched while another service of the same pcheck is still
// recovered; exit ends pcheck with status 3; shutdown with 0.
func TestRetryOver(t *testing.T) {
	for _, kind := range kinds {
		for _, action := range []string{"continue", "exit", "shutdown"} {
			t.Run(kind+"/"+action, func(t *testing.T) {
				t.Parallel()
				failing, other := newServer(t, kind), newServer(t, kind)
				sc := newScene(t)
				otherName := kind + "-other"
				pfA := failing.writePfile(t, sc.dir, pfileOpts{script: failing.brokenScript, retryCount: 2, action: action})
				pfB := other.writePfile(t, sc.dir, pfileOpts{name: otherName})
				masterA, masterB := failing.start(t), other.start(t)
				p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pfA, pfB)
				upWith(t, p, kind, masterA)
				upWith(t, p, otherName, masterB)

				kill9(t, masterA)
				p.expectLines(t,
					down(kind, masterA), ended(kind, masterA, killedBy9),
					tryRestart(kind), setPidFail(kind),
					tryRestart(kind), setPidFail(kind),
					retryOver(kind, action))

				switch action {
				case "exit", "shutdown":
					want := map[string]int{"exit": 3, "shutdown": 0}[action]
					status, err := p.waitExit(waitCtx(t))
					if err != nil {
						t.Fatal(err)
					}
					if status != want {
						t.Fatalf("pcheck ended with status %d after retry over (%s), want %d", status, action, want)
					}
					if !alive(masterB) {
						t.Fatalf("the other service's master %d died with pcheck", masterB)
					}
					return
				}
				p.waitState(t, kind, "RetryOver")
				// The operator starts the failed server by hand: it is
				// adopted (Up, watched again); the other service is still
				// recovered, its lines next.
				again := failing.start(t)
				upWith(t, p, kind, again)
				got, err := p.lines(waitCtx(t), 8)
				if err != nil {
					t.Fatal(err)
				}
				if got[7] != up(kind, again) {
					t.Fatalf("after a start by hand pcheck logged %q, want %q", got[7], up(kind, again))
				}
				kill9(t, masterB)
				expectRestart(t, p, 8, other, otherName, masterB)
			})
		}
	}
}

// TestPcheckRestartAdopts: a pcheck started while its service runs adopts
// it without restarting it; a later kill is its first line.
func TestPcheckRestartAdopts(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, kind)
			sc := newScene(t)
			pf := srv.writePfile(t, sc.dir, pfileOpts{})
			master := srv.start(t)
			first := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
			upWith(t, first, kind, master)
			first.stop()
			if first.status != 0 {
				t.Fatalf("pcheck ended with status %d on SIGTERM, want 0", first.status)
			}
			if !alive(master) {
				t.Fatalf("master %d died with pcheck", master)
			}

			second := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
			upWith(t, second, kind, master)
			kill9(t, master)
			expectRestart(t, second, 0, srv, kind, master)
			if lines := first.allLines(); len(lines) != 0 {
				t.Fatalf("the first pcheck logged %q, want nothing", lines)
			}
		})
	}
}

// TestPadminStopStart: after padmin stop a kill is not acted on; padmin
// start watches (and here starts) the service again.
func TestPadminStopStart(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, kind)
			sc := newScene(t)
			pf := srv.writePfile(t, sc.dir, pfileOpts{})
			master := srv.start(t)
			p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
			upWith(t, p, kind, master)

			stopper := p.padmin(t, "stop", kind)
			expectPadminLine(t, sc.syslog, stopper, command("stop", kind))
			p.waitState(t, kind, "Paused")
			kill9(t, master)
			waitGone(t, master)
			// The operator's maintenance: the rest of the server goes too.
			srv.killAll()
			if st := p.waitState(t, kind, "Paused"); len(st.PIDs) != 0 {
				t.Fatalf("paused %s watches pids %v", kind, st.PIDs)
			}

			// Had pcheck acted on the kill, its Down would come before
			// what padmin start causes.
			starter := p.padmin(t, "start", kind)
			expectPadminLine(t, sc.syslog, starter, command("start", kind))
			got, err := p.lines(waitCtx(t), 2)
			if err != nil {
				t.Fatal(err)
			}
			m := upLine.FindStringSubmatch(got[1])
			if got[0] != tryRestart(kind) || m == nil || m[1] != kind {
				t.Fatalf("after padmin start pcheck logged %q, want %q then %q", got, tryRestart(kind), up(kind, 0))
			}
			next, _ := strconv.Atoi(m[2])
			if real := srv.waitMaster(t, master); real != next {
				t.Fatalf("pcheck says %s is up with pid %d, the pid file says %d", kind, next, real)
			}
			getHTTP(t, srv.url(), srv.token)
			upWith(t, p, kind, next)

			// Watched again.
			kill9(t, next)
			expectRestart(t, p, 2, srv, kind, next)
		})
	}
}
