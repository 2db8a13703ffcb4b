// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// TestLateDaemonLeavesNoSecondCopy: pcheck's first start of a service
// times out (restart_timeout 1 s) while its daemon is still on its way (it
// execs 2 s after the script). The next attempt must not run beside it:
// pcheck kills what the failed attempt's script started, its tree from
// the fork events where the backend keeps trees (there the daemon is
// detached with setsid, as a daemon is), its process group elsewhere. After
// the retries exactly one instance runs, the one pcheck watches; with every
// backend.
func TestLateDaemonLeavesNoSecondCopy(t *testing.T) {
	testpriv.Root(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	for _, watcher := range []string{"ebpf", "netlink", "pidfd", "proc"} {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			svc := filepath.Join(sc.dir, "svc")
			copyFile(t, sleep, svc)
			t.Cleanup(func() { killExe(svc) })
			detach := "" // pidfd, proc: the daemon stays in the script's group
			if watcher == "ebpf" || watcher == "netlink" {
				detach = "setsid "
			}
			first := filepath.Join(sc.dir, "first")
			script := filepath.Join(sc.dir, "start")
			// The first run starts the daemon 2 s late; the later ones at once.
			writeFile(t, script, fmt.Sprintf(`#!/bin/sh
if mkdir %[1]s 2>/dev/null; then
	%[2]ssh -c 'sleep 2; exec %[3]s 1000000' </dev/null >/dev/null 2>&1 &
	exit 0
fi
%[2]s%[3]s 1000000 </dev/null >/dev/null 2>&1 &
`, first, detach, svc), 0o755)
			pf := filepath.Join(sc.dir, "svc.pfile")
			writeFile(t, pf, fmt.Sprintf(`process          %s
args             ^1000000$
restart_script   %s
restart_timeout  1
retry_count      3
kill_timeout     1
`, svc, script), 0o644)

			p := startPcheck(t, sc.syslog, sc.dir, watcher, pf)
			st := p.waitState(t, "svc", "Up")
			info, err := os.Stat(first)
			if err != nil {
				t.Fatal(err)
			}
			// The late daemon would have come 2 s after the first script
			// ran: only past that moment (and a margin for a loaded host)
			// does the absence of a second copy mean anything.
			time.Sleep(time.Until(info.ModTime().Add(2*time.Second + 1500*time.Millisecond)))
			running := pidsWhere(runs(svc))
			if len(running) != 1 || !slices.Equal(st.PIDs, running) {
				t.Fatalf("running instances %v, pcheck watches %v: want exactly one, the watched one", running, st.PIDs)
			}
			if again := p.waitState(t, "svc", "Up"); !slices.Equal(again.PIDs, running) {
				t.Fatalf("pcheck watches %v now, %v before", again.PIDs, st.PIDs)
			}
		})
	}
}
