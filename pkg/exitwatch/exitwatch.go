// Package exitwatch tells, as soon as the kernel knows, that a watched
// process has exited (or become a zombie), and that a watched executable has
// been started anew. Several backends implement one Watcher interface.
package exitwatch

import (
	"time"

	"github.com/pwatch/pwatch/pkg/proc"
)

// Kind says what an Event reports.
type Kind int

const (
	// Exit: a watched process's whole thread group has exited.
	Exit Kind = iota + 1
	// Exec: a process started running one of the watched executables.
	Exec
)

func (k Kind) String() string {
	switch k {
	case Exit:
		return "exit"
	case Exec:
		return "exec"
	}
	return "unknown"
}

// Event is what every backend reports, in the same shape.
type Event struct {
	Kind Kind
	ID   proc.ID
	// Exit only. Known is false when the backend could not learn the status
	// (a process already reaped by its parent, seen by polling).
	Known      bool
	ExitStatus int  // exit(2) status when Signal == 0
	Signal     int  // the signal that killed it, 0 if it exited
	CoreDumped bool // the signal dumped core
	// Exec only: the watched executable path that was started.
	Exe string
	// At is the CLOCK_MONOTONIC time at which the backend saw the event.
	At time.Duration
}

// Watcher is one death-detection backend.
type Watcher interface {
	// Name is the backend's name: ebpf, netlink, pidfd or proc.
	Name() string
	// Watch reports the exit of id, once. A process already gone or of
	// another identity is reported at once as exited (status unknown).
	Watch(id proc.ID) error
	// Unwatch stops watching id; unknown ids are ignored.
	Unwatch(id proc.ID) error
	// WatchExec reports processes that start executing path.
	WatchExec(path string) error
	UnwatchExec(path string) error
	// Events is the stream of exit and exec events; closed by Close.
	Events() <-chan Event
	Close() error
}
