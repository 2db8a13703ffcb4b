// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// exitPoll is how often a dying process is re-read where no pidfd can be
// had (kernels before 5.3).
const exitPoll = 2 * time.Millisecond

// pidfdWaitSlice bounds one poll(2) on a pidfd, so that ctx is heard.
const pidfdWaitSlice = 50 * time.Millisecond

// WaitExited returns once id has exited (a zombie or gone: its files are
// closed, so its ports are free), or when ctx ends. A death watch reports
// a death as the process enters do_exit, a moment before that: the pidfd
// turns readable the instant the exit completes, with no polling delay.
func (t *Table) WaitExited(ctx context.Context, id ID) error {
	fd, err := unix.PidfdOpen(id.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return t.pollExited(ctx, id)
	}
	defer unix.Close(fd)
	// Only now that fd pins a process can its identity be checked.
	if life, _ := CheckAlive(t.root, id); life != Running {
		return nil
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, int(pidfdWaitSlice.Milliseconds()))
		if n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return t.pollExited(ctx, id)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (t *Table) pollExited(ctx context.Context, id ID) error {
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for {
		if life, _ := CheckAlive(t.root, id); life != Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
