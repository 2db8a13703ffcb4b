package exitwatch

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/proc"
)

// procStat is the part of /proc/PID/stat the backends need.
type procStat struct {
	State     byte   // field 3: R, S, D, Z, X, ...
	Flags     uint64 // field 9: the task's PF_* flags
	Threads   int    // field 20: threads still counted in the group
	StartTime uint64 // field 22
	// ExitCode is field 52, the wait(2)-style status the kernel keeps for a
	// zombie (0 while running; readable only with ptrace access).
	ExitCode int
}

// readStat reads /proc/PID/stat. A vanished process gives an error for which
// errors.Is(err, fs.ErrNotExist) holds (ENOENT and ESRCH are folded into it).
func readStat(procRoot string, pid int) (procStat, error) {
	return readStatFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
}

func readStatFile(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			err = fmt.Errorf("%w: %w", fs.ErrNotExist, err)
		}
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses one /proc/PID/stat line. comm (field 2) may hold spaces
// and parentheses, so fields are counted from its last ')'.
func parseStat(b []byte) (procStat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 >= len(b) {
		return procStat{}, fmt.Errorf("malformed stat %q", b)
	}
	f := bytes.Fields(b[end+2:]) // f[0] is field 3
	field := func(n int) (uint64, error) {
		if n-3 >= len(f) {
			return 0, fmt.Errorf("stat has no field %d", n)
		}
		return strconv.ParseUint(string(f[n-3]), 10, 64)
	}
	var s procStat
	if len(f) == 0 || len(f[0]) != 1 {
		return s, fmt.Errorf("malformed stat state in %q", b)
	}
	s.State = f[0][0]
	var err error
	if s.Flags, err = field(9); err != nil {
		return s, err
	}
	threads, err := field(20)
	if err != nil {
		return s, err
	}
	s.Threads = int(threads)
	if s.StartTime, err = field(22); err != nil {
		return s, err
	}
	// Field 52 exists since Linux 3.5; without it the status is unknown.
	if code, err := field(52); err == nil {
		s.ExitCode = int(code)
	}
	return s, nil
}

// groupGone tells whether the stat shows a thread group that has finished:
// a zombie (or dead) leader with no other thread left. A leader that called
// pthread_exit shows Z while its other threads still run: that is alive.
func (s procStat) groupGone() bool {
	return (s.State == 'Z' || s.State == 'X') && s.Threads <= 1
}

// checkAlive is the one place that decides whether the identity id still
// names a running process. When it does not, ev is the Exit event to report:
// with the status when the process is still a zombie, status unknown when it
// was reaped or the pid now belongs to another process (id's start time
// differs). Errors other than "vanished" count as alive: we never report an
// exit we have not seen.
func checkAlive(procRoot string, id proc.ID) (alive bool, ev Event) {
	st, err := readStat(procRoot, id.PID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, exitEvent(id, false, 0)
	case err != nil:
		return true, Event{}
	case st.StartTime != id.StartTime:
		return false, exitEvent(id, false, 0)
	case st.groupGone():
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
	st, err := readStat(procRoot, pid)
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
	st, err := readStat(procRoot, id.PID)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && st.StartTime != id.StartTime) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if st.groupGone() {
		return true, nil
	}
	taskDir := procRoot + "/" + strconv.Itoa(id.PID) + "/task"
	first, err := listTasks(taskDir)
	if err != nil {
		return false, err
	}
	for tid := range first {
		ts, err := readStatFile(taskDir + "/" + tid + "/stat")
		if errors.Is(err, fs.ErrNotExist) {
			continue // released: it has exited
		}
		if err != nil {
			return false, err
		}
		if ts.Flags&pfExiting == 0 && ts.State != 'Z' && ts.State != 'X' {
			// A live thread, unless the pid was reused while we read.
			now, err := readStat(procRoot, id.PID)
			return errors.Is(err, fs.ErrNotExist) || (err == nil && now.StartTime != id.StartTime), nil
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
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
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
