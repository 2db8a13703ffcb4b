// SPDX-License-Identifier: Apache-2.0

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
	// Exit only, where the backend can know (see docs/behaviour.md): the
	// OOM killer chose it; or the process that sent the signal that
	// killed it.
	OOM    *OOMKill
	Sender *Sender
	// oomTold: the backend saw for itself whether the OOM killer chose it
	// (ebpf with mark_victim), so OOM nil means it did not.
	oomTold bool
	// Exec only: the watched executable path that was started, and the
	// parent of the process that started it.
	Exe  string
	PPID int
	// Exec only: the command line it runs, read once for every view at
	// the event (nil when it could not be read), and its arguments as
	// a pfile's args rule sees them (proc.ArgsLine), joined once too.
	Argv    []string
	ArgLine string
	// At is the CLOCK_MONOTONIC time at which the backend saw the event.
	At time.Duration
}

// OOMKill is an OOM killer's choice, with what the kernel log told of it
// (empty where it told nothing).
type OOMKill struct {
	Memcg  string // the memory cgroup it was charged to
	RSSKiB int64  // anon + file + shmem resident memory when killed; 0 unknown
}

// Sender is the process that sent a signal, as it was when it sent it.
type Sender struct {
	PID  int
	Comm string
	UID  int
}

// Sink takes a backend's events (Open) or one view's (Mux). Its methods
// are called on the goroutine that saw the event (the backend's reader, or
// the caller of Watch) and must never block.
type Sink interface {
	Exited(Event)
	Execed(Event)
	// Resync says events may have been lost: what the sink knows from
	// events alone (a restarted process, a tree) must be checked in /proc.
	Resync()
}

// Watcher is one death-detection backend. It reports to the Sink it was
// opened with.
type Watcher interface {
	// Name is the backend's name: ebpf, netlink, pidfd or proc.
	Name() string
	// Watch reports the exit of id, at most once per Watch (watching an
	// identity already watched changes nothing). A process already gone or
	// of another identity (the pid reused) is reported at once as exited,
	// status unknown; one already a zombie at once, with its status (if
	// /proc shows it to us: CAP_SYS_PTRACE). An
	// exit is the whole thread group's end (all threads exited, or a
	// zombie): a thread's exit is never reported, even the leader's while
	// other threads run.
	Watch(id proc.ID) error
	// Unwatch stops watching id; unknown ids are ignored.
	Unwatch(id proc.ID) error
	// WatchExec reports processes that start executing path (absolute),
	// matched by device and inode, from the call on: processes already
	// running it are not reported. Backends without a kernel exec
	// notification (pidfd, proc) find them by scanning /proc every
	// Options.PollInterval, so they report up to one interval late and
	// miss a process that lives shorter than that; and they tell the
	// processes already running by their start time, in /proc's 10 ms
	// ticks, so one started in the tick of the call is not reported
	// either (a service's own look finds it).
	WatchExec(path string) error
	UnwatchExec(path string) error
	// Done is closed once the backend has ended: after Close, or on its
	// own when its event source failed (no exit can be seen any more).
	Done() <-chan struct{}
	// LastWake is when the backend's reader last woke (CLOCK_MONOTONIC), 0
	// before it first did. Every reader wakes at least every
	// ReaderWakeEvery, so a watchdog tells a live event path from a stuck
	// one.
	LastWake() time.Duration
	// Close stops the backend; nothing reaches the Sink after it returns.
	Close() error
}
