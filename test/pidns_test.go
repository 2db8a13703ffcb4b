// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// TestKillMasterInPIDNamespace: pcheck as the init of a pid namespace with
// its own /proc (a container): the service it starts there is killed from
// the host, by its host pid, and pcheck, which knows it by the namespace's
// pid, sees the death and restarts it, on every backend that works in a
// namespace and on auto; netlink refuses to start there, saying why.
func TestKillMasterInPIDNamespace(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range []string{"auto", "ebpf", "pidfd", "proc", "netlink"} {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			s := newSleeper(t, sc.dir, "contained")
			pf := s.writePfile(t, sc.dir, "", "kill_timeout 1")
			p := startPcheckInPIDNamespace(t, sc.syslog, sc.dir, watcher, pf)
			if watcher == "netlink" {
				code, err := p.waitExit(waitCtx(t))
				if err != nil || code != 1 || !strings.Contains(p.stderr.String(), "pid namespace") {
					t.Fatalf("netlink in a pid namespace: status %d (%v), stderr:\n%s\nwant status 1 naming the pid namespace", code, err, p.stderr.String())
				}
				return
			}
			lines, err := p.lines(waitCtx(t), 2)
			if err != nil {
				t.Fatal(err)
			}
			local := upPID(t, lines[1], s.name)
			var host int
			pollUntil(t, "saw the contained service from the host", func() bool {
				pids := s.pids()
				if len(pids) == 1 {
					host = pids[0]
				}
				return len(pids) == 1
			})
			if host == local {
				t.Fatalf("the service has pid %d on the host and in the namespace: not in a namespace of its own", host)
			}
			kill9(t, host)
			got, err := p.lines(waitCtx(t), 6)
			if err != nil {
				t.Fatal(err)
			}
			got = got[2:]
			if got[0] != down(s.name, local) || got[2] != tryRestart(s.name) || upLine.FindStringSubmatch(got[3]) == nil {
				t.Fatalf("after kill -9 of %d (%d in the namespace) pcheck logged %q", host, local, got)
			}
			if watcher == "auto" && strings.Contains(p.stderr.String(), `chosen" watcher=netlink`) {
				t.Errorf("auto chose netlink in a pid namespace:\n%s", p.stderr.String())
			}
		})
	}
}
