// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/proc"
)

// The pidfd backend holds a pidfd per watched process and waits on all of
// them in one epoll loop: a pidfd turns readable when the whole thread group
// has exited, so thread exits never wake it. The status comes from the
// PIDFD_GET_INFO ioctl (PIDFD_INFO_EXIT, Linux 6.15+, once the process is
// reaped) or, while the process is a zombie, from /proc/PID/stat; otherwise
// it is unknown. Exec events are synthesised by scanning /proc every
// Options.PollInterval (see execPoller).
func init() {
	register(backend{name: "pidfd", rank: 2, probe: probePidfd, open: openPidfd})
}

func probePidfd(Options) error {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("pidfd_open: %w (%w)", ErrNotSupported, err)
	}
	if err != nil {
		return fmt.Errorf("pidfd_open: %w", err)
	}
	return unix.Close(fd)
}

type pidfdWatcher struct {
	heartbeat
	*outlet
	opt  Options
	exec *execPoller

	epfd   int
	wakefd int // an eventfd that ends the loop on Close
	done   chan struct{}

	mu     sync.Mutex
	byFD   map[int]proc.ID
	byID   map[proc.ID]int
	closed bool
}

func openPidfd(opt Options, sink Sink) (Watcher, error) {
	if err := probePidfd(opt); err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	w := &pidfdWatcher{
		outlet: newOutlet(sink),
		opt:    opt,
		epfd:   epfd,
		wakefd: wakefd,
		done:   make(chan struct{}),
		byFD:   map[int]proc.ID{},
		byID:   map[proc.ID]int{},
	}
	w.exec = newExecPoller(opt, w.push)
	go w.loop()
	return w, nil
}

func (w *pidfdWatcher) Name() string             { return "pidfd" }
func (w *pidfdWatcher) WatchExec(p string) error { return w.exec.add(p) }

func (w *pidfdWatcher) UnwatchExec(p string) error {
	w.exec.remove(p)
	return nil
}

func (w *pidfdWatcher) Watch(id proc.ID) error {
	if err := validID(id); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("pidfd watcher is closed")
	}
	if _, ok := w.byID[id]; ok {
		return nil
	}
	fd, err := unix.PidfdOpen(id.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		w.push(exitEvent(id, false, 0))
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %v: %w", id, err)
	}
	// The pid may have been reused before pidfd_open: only now that fd pins
	// a process can we check it is the one meant.
	if alive, ev := checkAlive(w.opt.ProcRoot, id); !alive {
		unix.Close(fd)
		w.push(ev)
		return nil
	}
	// A process that exits from here on makes fd readable, even before the
	// ADD: epoll reports a pidfd that is already readable.
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("epoll_ctl %v: %w", id, err)
	}
	w.byFD[fd] = id
	w.byID[id] = fd
	return nil
}

func (w *pidfdWatcher) Unwatch(id proc.ID) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fd, ok := w.byID[id]; ok {
		w.forget(id, fd)
	}
	return nil
}

// forget drops one watch; w.mu is held.
func (w *pidfdWatcher) forget(id proc.ID, fd int) {
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	unix.Close(fd)
	delete(w.byFD, fd)
	delete(w.byID, id)
}

func (w *pidfdWatcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	for {
		w.beat()
		n, err := unix.EpollWait(w.epfd, events, int(ReaderWakeEvery.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.opt.Logger.Error("pidfd watcher: epoll_wait failed, no more exits will be seen", "err", err)
			w.outlet.close() // Done: the consumer must know
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == w.wakefd {
				return
			}
			w.exited(fd)
		}
	}
}

// exited reports the process behind a ready pidfd. Between epoll_wait and
// here the watch may have been dropped and fd reused by a new watch, so
// readiness is checked again under the lock.
func (w *pidfdWatcher) exited(fd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.byFD[fd]
	if !ok || !pidfdReadable(fd) {
		return
	}
	ev := w.status(fd, id)
	w.forget(id, fd)
	w.push(ev)
}

func pidfdReadable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n == 1 && pfd[0].Revents&unix.POLLIN != 0
}

// status learns how the process behind fd ended: from the kernel when it
// keeps the exit info (reaped, Linux 6.15+), else from /proc while it is
// still a zombie of the same identity, else unknown.
func (w *pidfdWatcher) status(fd int, id proc.ID) Event {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	if err := unix.IoctlPidfdInfo(fd, &info); err == nil && info.Mask&unix.PIDFD_INFO_EXIT != 0 {
		return exitEvent(id, true, int(info.Exit_code))
	}
	if alive, ev := checkAlive(w.opt.ProcRoot, id); !alive {
		return ev
	}
	return exitEvent(id, false, 0) // /proc unreadable: the pidfd still says it ended
}

func (w *pidfdWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	var one = [8]byte{1}
	if _, err := unix.Write(w.wakefd, one[:]); err != nil {
		return fmt.Errorf("waking the pidfd loop: %w", err)
	}
	<-w.done
	w.mu.Lock()
	for id, fd := range w.byID {
		w.forget(id, fd)
	}
	w.mu.Unlock()
	w.exec.close()
	w.outlet.close()
	unix.Close(w.wakefd)
	return unix.Close(w.epfd)
}
