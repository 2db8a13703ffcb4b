// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// TestDeadMastersTreeIsKilled: a master adopted by pcheck forks a worker (a
// copy of itself) and a helper of another program after pcheck scanned it;
// when the master is killed, pcheck kills what is left of its tree before
// the restart. The event backends know both from fork events; pidfd and
// proc, which see no forks, find the worker because it matches the service
// and started after the master, but not the helper (docs/behaviour.md).
func TestDeadMastersTreeIsKilled(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range []string{"ebpf", "netlink", "pidfd", "proc"} {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			exe := testproc.CopyBinary(t, "pwatch-tree-"+watcher)
			script := filepath.Join(sc.dir, "start")
			writeFile(t, script, fmt.Sprintf("#!/bin/sh\nexec setsid -f %s sleep </dev/null >/dev/null 2>&1\n", exe), 0o755)
			t.Cleanup(func() { killExe(exe) })
			pf := filepath.Join(sc.dir, "tree.pfile")
			writeFile(t, pf, fmt.Sprintf("process %s\nrestart_script %s\nkill_timeout 1\n", exe, script), 0o644)

			master := testproc.Forker(t, exe)
			p := startPcheck(t, sc.syslog, sc.dir, watcher, pf)
			p.waitState(t, "tree", "Up")
			worker := master.Fork()
			helper := master.ForkExec()

			master.Signal(syscall.SIGKILL)
			lines, err := p.lines(waitCtx(t), 4)
			if err != nil {
				t.Fatal(err)
			}
			if lines[0] != down("tree", master.ID.PID) || lines[2] != tryRestart("tree") || upLine.FindStringSubmatch(lines[3]) == nil {
				t.Fatalf("pcheck logged %q, want the master's Down and a restart", lines)
			}
			gone := []proc.ID{worker}
			if watcher == "ebpf" || watcher == "netlink" {
				gone = append(gone, helper)
			}
			for _, id := range gone {
				// Killed before the restart: by the Up line it has exited.
				if life, _ := proc.CheckAlive("/proc", id); life == proc.Running {
					t.Errorf("%v, forked by the dead master after the scan, still runs after the restart", id)
				}
			}
		})
	}
}
