// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/proc"
)

// checkAlive asks proc's rule whether id still names a running process.
// When it does not, ev is the Exit event to report: with the status while
// the process is a zombie, status unknown when it was reaped or the pid now
// belongs to another process.
func checkAlive(procRoot string, id proc.ID) (alive bool, ev Event) {
	switch life, st := proc.CheckAlive(procRoot, id); life {
	case proc.Gone:
		return false, exitEvent(id, false, 0)
	case proc.Zombie:
		return false, exitEvent(id, canReadExitCode(), st.ExitCode)
	}
	return true, Event{}
}

// canReadExitCode tells whether field 52 of /proc/PID/stat is the real
// exit code: the kernel shows it only to who may ptrace-read the process and
// prints 0 to anyone else, which would pass for "exited 0". Without
// CAP_SYS_PTRACE we cannot be sure (a non-dumpable process hides it even
// from its own user), so the status is then unknown.
var canReadExitCode = sync.OnceValue(func() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_PTRACE/32].Effective&(1<<(unix.CAP_SYS_PTRACE%32)) != 0
})

// exitEvent builds an Exit event for id, decoding a wait(2) status when
// known, stamped with the current monotonic time.
func exitEvent(id proc.ID, known bool, waitStatus int) Event {
	ev := Event{Kind: Exit, ID: id, Known: known, At: monotonicNow()}
	if known {
		ev.ExitStatus, ev.Signal, ev.CoreDumped = decodeWaitStatus(waitStatus)
	}
	return ev
}

// decodeWaitStatus splits a wait(2) status (as kept in task->exit_code):
// low 7 bits the signal, bit 7 core dumped, bits 8-15 the exit status.
func decodeWaitStatus(ws int) (exitStatus, signal int, core bool) {
	signal = ws & 0x7f
	if signal != 0 {
		return 0, signal, ws&0x80 != 0
	}
	return (ws >> 8) & 0xff, 0, false
}

// monotonicNow is CLOCK_MONOTONIC, the clock of Event.At.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0 // cannot fail on Linux with a valid pointer
	}
	return time.Duration(ts.Nano())
}

// readID returns the identity currently holding pid.
func readID(procRoot string, pid int) (proc.ID, error) {
	st, err := proc.ReadStat(procRoot, pid)
	if err != nil {
		return proc.ID{}, err
	}
	return proc.ID{PID: pid, StartTime: st.StartTime}, nil
}

// validID rejects identities no process can have.
func validID(id proc.ID) error {
	if id.PID <= 0 {
		return fmt.Errorf("invalid process id %v", id)
	}
	return nil
}

// pfExiting is PF_EXITING: the task has entered do_exit and will never run
// user code again (set before the proc connector or sched_process_exit
// report the thread's exit).
const pfExiting = 0x4

// groupExiting tells whether the thread group id can no longer run: it is
// gone, its pid holds another process, or every one of its threads has
// begun to exit. Backends that see each thread's exit (netlink, ebpf) call
// it on a thread's exit to learn whether that exit ends the group; a
// thread's exit while another thread still runs does not. A thread created
// while the tasks are read shows up in the second listing, so it cannot be
// missed: every thread that could have created it was seen exiting.
func groupExiting(procRoot string, id proc.ID) (bool, error) {
	st, err := proc.ReadStat(procRoot, id.PID)
	if errors.Is(err, proc.ErrGone) || (err == nil && st.StartTime != id.StartTime) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if st.GroupGone() {
		return true, nil
	}
	taskDir := procRoot + "/" + strconv.Itoa(id.PID) + "/task"
	first, err := listTasks(taskDir)
	if err != nil {
		return false, err
	}
	for tid := range first {
		ts, err := proc.ReadStatFile(taskDir + "/" + tid + "/stat")
		if errors.Is(err, proc.ErrGone) {
			continue // released: it has exited
		}
		if err != nil {
			return false, err
		}
		if ts.Flags&pfExiting == 0 && !ts.State.Dead() {
			// A live thread, unless the pid was reused while we read.
			now, err := proc.ReadStat(procRoot, id.PID)
			return errors.Is(err, proc.ErrGone) || (err == nil && now.StartTime != id.StartTime), nil
		}
	}
	again, err := listTasks(taskDir)
	if err != nil {
		return false, err
	}
	for tid := range again {
		if _, ok := first[tid]; !ok {
			return groupExiting(procRoot, id) // a thread was born meanwhile: look again
		}
	}
	return true, nil
}

// listTasks reads the thread ids under /proc/PID/task. A vanished process
// lists none.
func listTasks(dir string) (map[string]struct{}, error) {
	entries, err := os.ReadDir(dir)
	if proc.IsGone(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tids := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		tids[e.Name()] = struct{}{}
	}
	return tids, nil
}

// MonotonicNow is CLOCK_MONOTONIC, the clock of Event.At and LastWake.
func MonotonicNow() time.Duration { return monotonicNow() }
