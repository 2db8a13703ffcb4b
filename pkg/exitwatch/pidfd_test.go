// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
)

// TestPidfdStatusOfReapedProcess: once the parent has reaped the process,
// /proc knows nothing, and the status must come from PIDFD_INFO_EXIT.
func TestPidfdStatusOfReapedProcess(t *testing.T) {
	cmd := exec.Command(testproc.Binary(t), "exit", "4")
	trigger, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := readID("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	trigger.Close()
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("helper ended with %v, want exit 4", err)
	}
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	if err := unix.IoctlPidfdInfo(fd, &info); err != nil || info.Mask&unix.PIDFD_INFO_EXIT == 0 {
		testpriv.Unavailable(t, "kernel without PIDFD_INFO_EXIT (Linux < 6.15)")
	}
	w := &pidfdWatcher{opt: Options{}.withDefaults()}
	ev := w.status(fd, id)
	if !ev.Known || ev.ExitStatus != 4 || ev.Signal != 0 || ev.ID != id {
		t.Errorf("status of reaped %v = %+v, want known exit 4", id, ev)
	}
	if alive, _ := checkAlive("/proc", id); alive {
		t.Errorf("reaped %v still alive by /proc", id)
	}
}
