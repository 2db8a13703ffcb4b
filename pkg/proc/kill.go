// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultKillWait is how long SIGKILL gets before a process that still
// lives is reported as not killed.
const DefaultKillWait = 5 * time.Second

// KillOptions says how Kill ends processes.
type KillOptions struct {
	// Signal is sent first; 0 means SIGTERM. With SIGKILL there is no
	// second step.
	Signal syscall.Signal
	// Timeout is how long Signal gets before SIGKILL (a pfile's
	// kill_timeout).
	Timeout time.Duration
	// KillWait is how long SIGKILL gets; 0 means DefaultKillWait.
	KillWait time.Duration
}

// ErrInterrupted says a Kill's context ended before it knew whether its
// processes died.
var ErrInterrupted = errors.New("kill interrupted")

// target is one process being killed.
type target struct {
	id    ID
	pidfd int   // -1: signalled with kill(2) after re-reading the identity
	done  bool  // exited, a zombie, gone, or its pid holds another process
	err   error // could not be signalled; left alone from then on
}

// pollSlice bounds one wait so a cancelled context is noticed; kill(2)
// targets have no readiness to wait on and are re-read this often.
const (
	pollSlice       = 100 * time.Millisecond
	legacyPollSlice = 10 * time.Millisecond
)

// Kill ends the processes ids: o.Signal to all of them, SIGKILL to those
// still alive after o.Timeout, and returns those still alive after
// o.KillWait. A process already gone, a zombie, or a pid now held by
// another process counts as killed; such a pid is never signalled. The
// error explains the survivors (a signal refused).
//
// A kill whose ctx ends first proved nothing: it returns no survivors and
// an error wrapping ErrInterrupted and ctx's error. A cancelled kill is not
// a failed one; the caller must not act on it as if the processes had
// outlived SIGKILL.
//
// Signals go through a pidfd where the kernel has them (Linux 5.3+): the
// pidfd is opened first and the identity checked after, so every signal
// through it reaches id and nothing else. Without pidfds the identity is
// re-read right before each kill(2). t must be a Table over the live /proc.
func (t *Table) Kill(ctx context.Context, ids []ID, o KillOptions) ([]ID, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	sig := o.Signal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	killWait := o.KillWait
	if killWait <= 0 {
		killWait = DefaultKillWait
	}
	targets := make([]*target, 0, len(ids))
	defer func() {
		for _, tg := range targets {
			if tg.pidfd >= 0 {
				unix.Close(tg.pidfd)
			}
		}
	}()
	for _, id := range ids {
		targets = append(targets, t.open(id))
	}

	var ctxErr error
	if sig != syscall.SIGKILL {
		t.signalAll(targets, sig)
		// A stopped process handles SIGTERM only once continued.
		t.signalAll(targets, syscall.SIGCONT)
		ctxErr = t.wait(ctx, targets, o.Timeout)
	}
	if ctxErr == nil {
		if n := pending(targets); n > 0 && sig != syscall.SIGKILL {
			t.log.Info("processes outlived the first signal; sending SIGKILL",
				"signal", sig, "count", n, "timeout", o.Timeout)
		}
		t.signalAll(targets, syscall.SIGKILL)
		ctxErr = t.wait(ctx, targets, killWait)
	}

	if ctxErr != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w with %d of %d processes not yet dead: %w", ErrInterrupted, pending(targets), len(targets), ctxErr)
	}
	var survivors []ID
	errs := []error{ctxErr}
	for _, tg := range targets {
		if !tg.done {
			survivors = append(survivors, tg.id)
			errs = append(errs, tg.err)
		}
	}
	return survivors, errors.Join(errs...)
}

// usePidfd probes pidfd_open once.
func (t *Table) usePidfd() bool {
	t.pidfdOnce.Do(func() {
		if t.noPidfd {
			return
		}
		fd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			t.log.Info("pidfd_open unavailable: signalling by pid, re-checking start time before each signal", "err", err)
			return
		}
		unix.Close(fd)
		t.pidfdOK = true
	})
	return t.pidfdOK
}

// open takes hold of id: a pidfd when possible, then the identity check.
func (t *Table) open(id ID) *target {
	tg := &target{id: id, pidfd: -1}
	if t.usePidfd() {
		fd, err := unix.PidfdOpen(id.PID, 0)
		switch {
		case err == nil:
			tg.pidfd = fd
		case errors.Is(err, unix.ESRCH):
			tg.done = true
			return tg
		default:
			t.log.Debug("pidfd_open failed; using kill(2)", "id", id, "err", err)
		}
	}
	// After pidfd_open, this check proves the pidfd holds id: the pid
	// could only be reused under it by a process started later.
	t.verify(tg)
	return tg
}

// verify marks tg done unless its pid still holds the live process tg.id.
// Done is CheckAlive's rule, not the leader's state: a leader that exited
// first (pthread_exit, or a fatal signal whose other threads are still
// exiting) shows Z while its thread group lives on, and must still be
// signalled and waited for.
func (t *Table) verify(tg *target) {
	st, err := ReadStat(t.root, tg.id.PID)
	switch {
	case errors.Is(err, ErrGone):
		tg.done = true
	case err != nil:
		tg.err = fmt.Errorf("verify %v: %w", tg.id, err)
	case st.StartTime != tg.id.StartTime:
		t.log.Debug("pid holds another process now; not signalling", "id", tg.id, "now_start", st.StartTime)
		tg.done = true
	case st.GroupGone():
		tg.done = true
	}
}

func (t *Table) signalAll(targets []*target, sig syscall.Signal) {
	for _, tg := range targets {
		t.signal(tg, sig)
	}
}

func (t *Table) signal(tg *target, sig syscall.Signal) {
	if tg.done || tg.err != nil {
		return
	}
	var err error
	if tg.pidfd >= 0 {
		err = unix.PidfdSendSignal(tg.pidfd, sig, nil, 0)
	} else {
		if t.verify(tg); tg.done || tg.err != nil {
			return
		}
		err = unix.Kill(tg.id.PID, sig)
	}
	switch {
	case err == nil:
		t.log.Debug("signalled", "id", tg.id, "signal", sig)
	case errors.Is(err, unix.ESRCH):
		tg.done = true
	default:
		tg.err = fmt.Errorf("send %v to %v: %w", sig, tg.id, err)
	}
}

// pending counts the targets still worth waiting for.
func pending(targets []*target) int {
	n := 0
	for _, tg := range targets {
		if !tg.done && tg.err == nil {
			n++
		}
	}
	return n
}

// wait returns when every target is done or refused a signal, when d has
// passed, or with ctx's error. A pidfd becomes readable when its process
// exits (zombies included); other targets are re-read.
func (t *Table) wait(ctx context.Context, targets []*target, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var fds []unix.PollFd
		var polled []*target
		legacy := false
		for _, tg := range targets {
			if tg.done || tg.err != nil {
				continue
			}
			if tg.pidfd < 0 {
				if t.verify(tg); !tg.done && tg.err == nil {
					legacy = true
				}
				continue
			}
			fds = append(fds, unix.PollFd{Fd: int32(tg.pidfd), Events: unix.POLLIN})
			polled = append(polled, tg)
		}
		if len(fds) == 0 && !legacy {
			return nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil
		}
		slice := min(remaining, pollSlice)
		if legacy {
			slice = min(slice, legacyPollSlice)
		}
		if len(fds) > 0 {
			_, err := unix.Poll(fds, int(slice.Milliseconds())+1)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll pidfds: %w", err)
			}
			for i, fd := range fds {
				if fd.Revents != 0 {
					polled[i].done = true
				}
			}
		} else {
			timer := time.NewTimer(slice)
			select {
			case <-ctx.Done():
				timer.Stop()
			case <-timer.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
