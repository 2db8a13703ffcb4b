// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// TestScriptStartedAsAnotherUser (issue 21, item 1): a pfile with no user
// whose restart script starts the daemon as uid 65534 (setpriv, su). The
// daemon descends from pcheck's own script (fork events, ebpf and netlink):
// it is the service, Up; its death is the service's and restarts it; a
// successor pcheck adopts it from the state directory's record. uid
// 65534's process of the same executable started by the test, not the
// script, is never adopted nor signalled.
func TestScriptStartedAsAnotherUser(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	for _, tc := range []struct{ watcher, how string }{{"ebpf", "setpriv"}, {"netlink", "su"}} {
		t.Run(tc.watcher+"/"+tc.how, func(t *testing.T) {
			t.Parallel()
			name := "scriptuid-" + tc.watcher
			r := newImpostorRig(t, name)
			run := fmt.Sprintf("%s 100000 </dev/null >/dev/null 2>&1", r.s.exe)
			var start string
			switch tc.how {
			case "setpriv":
				start = fmt.Sprintf("setpriv --reuid %d --regid %d --clear-groups %s &", nobody, nobody, run)
			case "su":
				start = fmt.Sprintf("su -s /bin/sh nobody -c 'exec %s' &", run)
			}
			script := filepath.Join(r.sc.dir, name+".as-nobody")
			writeFile(t, script, "#!/bin/sh\n"+start+"\n", 0o755)
			r.pf = r.s.writePfile(t, r.sc.dir, script, "restart_timeout 30", "kill_timeout 1", "grace 3600", "retry_count 5")

			impostor := startAs(t, nobody, r.s.exe, "100000")
			p := startPcheck(t, r.sc.syslog, r.sc.dir, tc.watcher, r.pf)

			// At start the impostor is no running service; the script's
			// daemon, uid 65534 too, is.
			first := expectNobodyUp(t, p, 0, name, impostor.Process.Pid)
			st := p.waitState(t, name, "Up")
			if !slices.Equal(st.PIDs, []int{first}) {
				t.Fatalf("pcheck watches %v, want the script's %d alone (the impostor is %d)", st.PIDs, first, impostor.Process.Pid)
			}

			// Its death is the service's: pcheck restarts it.
			kill9(t, first)
			got, err := p.lines(waitCtx(t), 4)
			if err != nil {
				t.Fatal(err)
			}
			endings := []string{ended(name, first, killedBy9), ended(name, first, "exited (status unknown)")}
			if got[2] != down(name, first) || !slices.Contains(endings, got[3]) {
				t.Fatalf("pcheck logged %q, want the death of the script's %d: %q, one of %q", got, first, down(name, first), endings)
			}
			second := expectNobodyUp(t, p, 4, name, impostor.Process.Pid)

			// A successor (pcheck restarted, the service left running)
			// adopts that very process from its record, not the impostor.
			p.stop()
			next := startPcheck(t, r.sc.syslog, r.sc.dir, tc.watcher, r.pf)
			waitLineFrom(t, r.sc.syslog, "pcheck", next.logPID, adopted(name, second))
			st = next.waitState(t, name, "Up")
			if !slices.Equal(st.PIDs, []int{second}) {
				t.Fatalf("the successor watches %v, want %d alone (the impostor is %d)", st.PIDs, second, impostor.Process.Pid)
			}
			if !alive(impostor.Process.Pid) {
				t.Fatalf("the impostor %d was signalled", impostor.Process.Pid)
			}
			// The impostor's exit is nothing to pcheck; the daemon's
			// death still is the service's.
			_ = impostor.Process.Kill()
			_ = impostor.Wait()
			kill9(t, second)
			got, err = next.lines(waitCtx(t), 2)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != down(name, second) {
				t.Fatalf("the successor logged %q first, want %q", got, down(name, second))
			}
			expectNobodyUp(t, next, 2, name, impostor.Process.Pid)
			if extra := next.allLines()[4:]; len(extra) != 0 {
				t.Errorf("more lines after the restart: %q", extra)
			}
		})
	}
}

// expectNobodyUp checks that p's lines from first are a restart of name
// and Up with a uid 65534 process other than impostor, the one process of
// uid 65534 the test did not start; it returns its pid.
func expectNobodyUp(t *testing.T, p *pcheckRun, first int, name string, impostor int) int {
	t.Helper()
	got, err := p.lines(waitCtx(t), first+2)
	if err != nil {
		t.Fatal(err)
	}
	got = got[first:]
	if got[0] != tryRestart(name) {
		t.Fatalf("pcheck logged %q, want %q first: uid %d's impostor %d was taken for the running service", got, tryRestart(name), nobody, impostor)
	}
	m := upLine.FindStringSubmatch(got[1])
	if m == nil || m[1] != name {
		t.Fatalf("pcheck logged %q, want %s Up", got[1], name)
	}
	pid, _ := strconv.Atoi(m[2])
	if pid == impostor {
		t.Fatalf("pcheck took the impostor %d for %s", pid, name)
	}
	if uid := realUID(pid); uid != nobody {
		t.Fatalf("pcheck took pid %d (uid %d) for %s, want the script's daemon of uid %d", pid, uid, name, nobody)
	}
	return pid
}

// TestScriptStartedAsAnotherUserInFlight: pcheck dies (SIGKILL) while its
// restart script, having started the daemon as uid 65534, still runs. The
// successor waits for the script and then adopts what it left in its
// process group; uid 65534's impostor is still not the service.
func TestScriptStartedAsAnotherUserInFlight(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "scriptuid-inflight"
	r := newImpostorRig(t, name)
	script := filepath.Join(r.sc.dir, name+".as-nobody")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\nsetpriv --reuid %d --regid %d --clear-groups %s 100000 </dev/null >/dev/null 2>&1 &\nwhile [ ! -e %s ]; do sleep 0.05; done\n",
		nobody, nobody, r.s.exe, r.gate), 0o755)
	r.pf = r.s.writePfile(t, r.sc.dir, script, "restart_timeout 60", "kill_timeout 1")
	impostor := startAs(t, nobody, r.s.exe, "100000")

	p := startPcheck(t, r.sc.syslog, r.sc.dir, "ebpf", r.pf)
	if got, err := p.lines(waitCtx(t), 1); err != nil || got[0] != tryRestart(name) {
		t.Fatalf("pcheck logged %q (%v), want %q", got, err, tryRestart(name))
	}
	var daemon int
	pollUntil(t, "saw the script start the daemon", func() bool {
		for _, pid := range r.s.pids() {
			if pid != impostor.Process.Pid && realUID(pid) == nobody {
				daemon = pid
				return true
			}
		}
		return false
	})
	_ = p.cmd.Process.Kill()
	<-p.exited

	next := startPcheck(t, r.sc.syslog, r.sc.dir, "ebpf", r.pf)
	pollUntil(t, "the successor waits for the script", func() bool {
		return strings.Contains(next.stderr.String(), "a restart script of the previous pcheck is still running")
	})
	r.open(t) // the script returns
	waitLineFrom(t, r.sc.syslog, "pcheck", next.logPID, adopted(name, daemon))
	st := next.waitState(t, name, "Up")
	if !slices.Equal(st.PIDs, []int{daemon}) {
		t.Fatalf("the successor watches %v, want the script's %d alone (the impostor is %d)", st.PIDs, daemon, impostor.Process.Pid)
	}
	if !alive(impostor.Process.Pid) {
		t.Fatalf("the impostor %d was signalled", impostor.Process.Pid)
	}
	if got := next.allLines(); len(got) != 0 {
		t.Errorf("the successor logged %q, want the adoption alone", got)
	}
}
