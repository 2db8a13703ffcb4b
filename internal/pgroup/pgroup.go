// Package pgroup runs a command as the leader of a process group of its own
// and kills that group safely: through a pidfd, so the signal reaches the
// group the command made even once the command itself is reaped, and never
// a group that later took the same number.
package pgroup

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Group is the process group of one command.
type Group struct {
	cmd   *exec.Cmd
	pidfd int
}

// New makes cmd, not yet started, lead a new process group and keep a pidfd
// to it. Close the Group once cmd is done.
func New(cmd *exec.Cmd) *Group {
	g := &Group{cmd: cmd, pidfd: -1}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.PidFD = &g.pidfd
	return g
}

// Kill sends SIGKILL to the group. Kernels before 6.9 cannot signal a group
// through a pidfd: there kill(2) on -pid is the best there is.
func (g *Group) Kill() error {
	if g.cmd.Process == nil {
		return errors.New("pgroup: not started")
	}
	if g.pidfd >= 0 {
		err := unix.PidfdSendSignal(g.pidfd, unix.SIGKILL, nil, unix.PIDFD_SIGNAL_PROCESS_GROUP)
		if err == nil || errors.Is(err, unix.ESRCH) {
			return nil
		}
	}
	return syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
}

// Close releases the pidfd.
func (g *Group) Close() {
	if g.pidfd >= 0 {
		unix.Close(g.pidfd)
		g.pidfd = -1
	}
}
