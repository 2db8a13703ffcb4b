// SPDX-License-Identifier: Apache-2.0

// Package pgroup runs a command as the leader of a process group of its own
// and kills that group safely: through a pidfd, so the signal reaches the
// group the command made even once the command itself is reaped, and never
// a group that later took the same number.
package pgroup

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrReaped says the group was not signalled: its leader is reaped, and
// without a pidfd that can signal a group (Linux 6.9+) its number could
// belong to another group by now.
var ErrReaped = errors.New("pgroup: leader already reaped; its group number may have been reused")

// Group is the process group of one command.
type Group struct {
	cmd   *exec.Cmd
	pidfd int
	// noGroupSignal: the kernel cannot signal a group through a pidfd
	// (before 6.9); tests set it to take that path on any kernel.
	noGroupSignal bool

	mu     sync.Mutex
	reaped bool // cmd.Wait may have reaped the leader: its number is not ours
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

// Wait waits for the started command to exit and reaps it, as cmd.Wait.
// When ctx ends first, the group is killed first and the leader reaped
// after: the leader's pid, unreaped, keeps its group's number from being
// reused, so even kill(2) on -pgid (kernels before 6.9) cannot hit another
// group. The error is then ctx's.
func (g *Group) Wait(ctx context.Context) error {
	if g.cmd.Process == nil {
		return errors.New("pgroup: not started")
	}
	exited := make(chan struct{})
	pidfd := g.pidfd
	go func() {
		defer close(exited)
		awaitExit(pidfd, g.cmd.Process.Pid)
	}()
	killed := false
	var killErr error
	select {
	case <-exited:
	case <-ctx.Done():
		select {
		case <-exited: // it finished in time after all: its group stays
		default:
			killed, killErr = true, g.Kill()
		}
	}
	// From here the leader may be reaped at any moment: no kill(2) on its
	// number any more.
	g.mu.Lock()
	g.reaped = true
	g.mu.Unlock()
	err := g.cmd.Wait()
	if pidfd >= 0 {
		// Reaped, the leader ends the waitid; the pidfd is ours again
		// (Close). Without a pidfd it waits on a pid: let it be.
		<-exited
	}
	switch {
	case !killed:
		return err
	case killErr != nil:
		return fmt.Errorf("%w (killing its group: %v)", ctx.Err(), killErr)
	default:
		return ctx.Err()
	}
}

// awaitExit returns once the leader has exited (or is reaped), without
// reaping it (WNOWAIT): only cmd.Wait reaps.
func awaitExit(pidfd, pid int) {
	var info unix.Siginfo
	for {
		var err error
		if pidfd >= 0 {
			err = unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOWAIT, nil)
		} else {
			err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		}
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Kill sends SIGKILL to the group. Kernels before 6.9 cannot signal a group
// through a pidfd: there kill(2) on -pgid is used, but only while the
// leader is not yet reaped (see Wait); after that Kill is ErrReaped.
func (g *Group) Kill() error {
	if g.cmd.Process == nil {
		return errors.New("pgroup: not started")
	}
	if g.pidfd >= 0 && !g.noGroupSignal {
		err := unix.PidfdSendSignal(g.pidfd, unix.SIGKILL, nil, unix.PIDFD_SIGNAL_PROCESS_GROUP)
		if err == nil || errors.Is(err, unix.ESRCH) {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("pgroup: signal group through pidfd: %w", err)
		}
		// EINVAL: a kernel before 6.9, which knows no group flag.
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reaped {
		return ErrReaped
	}
	err := syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Close releases the pidfd.
func (g *Group) Close() {
	if g.pidfd >= 0 {
		unix.Close(g.pidfd)
		g.pidfd = -1
	}
}
