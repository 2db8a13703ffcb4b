// SPDX-License-Identifier: Apache-2.0

// Package supervise keeps one service alive: one state machine per service
// that notices its death, kills what is left of it, runs its restart script
// within its retry budget, and takes its retry-over action.
package supervise

import (
	"context"
	"log/slog"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/probe"
	"github.com/pwatch/pwatch/pkg/proc"
)

// Processes is what a supervisor needs of the process table, already bound
// to its service's matcher.
type Processes interface {
	// Find returns the service's top-level processes now, each with the
	// processes below it: from a read of all of /proc begun after the
	// call (shared with the other services asking at the same time).
	Find() ([]proc.Match, error)
	// FindSince is Find from a read begun at or after t: for periodic
	// looks (t a period ago) and the first look of services started
	// together, which all share one read.
	FindSince(t time.Time) ([]proc.Match, error)
	// Admits says whether a process with these arguments (proc.ArgsLine)
	// could be the service's (an exec of its executable by another
	// service is not worth a look).
	Admits(argLine string) bool
	// Read is the process that has pid now.
	Read(pid int) (proc.Process, error)
	// Group lists the processes now in the process group or session that
	// leader led, started no earlier than it (what a restart script left).
	Group(leader proc.ID) ([]proc.ID, error)
	// Among returns the service's top-level processes among cands (and
	// the processes below them among cands), reading /proc only for those
	// pids and their ancestors. ok is false when the matcher cannot decide
	// pid by pid (a pidfile, a #! script): Find instead.
	Among(cands []proc.Process) (found []proc.Match, ok bool, err error)
	// Kill ends the given processes (o.Signal, then SIGKILL after
	// o.Timeout) and returns those it could not kill.
	Kill(ctx context.Context, ids []proc.ID, o proc.KillOptions) ([]proc.ID, error)
	// Alive says whether id still runs (not a zombie, its pid not reused).
	Alive(id proc.ID) (bool, error)
	// Grant replaces the identities taken for the service whatever their
	// real uid (they must still match its executable and args): what
	// pcheck's own restart script started as another user.
	Grant(ids []proc.ID)
	// WaitExited returns once id is a zombie or gone (its files closed, so
	// its port is free), or when ctx ends.
	WaitExited(ctx context.Context, id proc.ID) error
}

// Watcher is the death watch the daemon lends each service
// (exitwatch.View). Its events come back through the Service's Exited,
// Execed and Resync.
type Watcher interface {
	// Watch reports m's exit and keeps its tree (where the backend keeps
	// trees). It never fails: the watch falls back to polling.
	Watch(m proc.Match)
	Unwatch(id proc.ID)
	// Tree lists what events left of root's tree (root excluded); false
	// when the backend keeps no trees or lost track: scan instead.
	Tree(root proc.ID) ([]proc.Process, bool)
	// KeepsTrees says whether Tree can answer at all.
	KeepsTrees() bool
	// Follow keeps root's tree from now on without watching its exit
	// (a restart script), where the backend keeps trees.
	Follow(root proc.ID, ppid int)
}

// Logger writes catalogue messages (syslog and stderr).
type Logger interface {
	Log(m msg.Message)
}

// Clock reads the monotonic clock; tests move it by hand.
type Clock interface {
	Now() time.Duration
}

// Observer counts what happens to services (pkg/metrics implements it).
type Observer interface {
	// Death counts a top-level process's death by its cause (msg.Cause*).
	Death(service, cause string)
	Restart(service, reason string)
	RetryOver(service string)
	Stall(service string)
	ObserveProbe(service, check string, took time.Duration, ok bool)
}

type noObserver struct{}

func (noObserver) Death(string, string)                             {}
func (noObserver) Restart(string, string)                           {}
func (noObserver) RetryOver(string)                                 {}
func (noObserver) Stall(string)                                     {}
func (noObserver) ObserveProbe(string, string, time.Duration, bool) {}

// Memory keeps a service's Paused and RetryOver across pcheck restarts
// (pkg/opstate's Store).
type Memory interface {
	Keep(service string, e opstate.Entry) error
	Drop(service string) error
}

// Deps are the supervisor's collaborators, injected by the daemon.
type Deps struct {
	Processes Processes
	Watcher   Watcher
	Log       Logger
	// Slog takes the daemon's own diagnostics (not catalogue messages).
	Slog  *slog.Logger
	Clock Clock
	// Exit asks pcheck to end with this status (retry-over shutdown: 0,
	// exit: 3). It must not block.
	Exit func(status int)
	// Reboot reboots the node for service through the reboot guard
	// (retry_over_action reboot, recovery_timeout). It returns an error
	// wrapping reboot.ErrThresholdReached when the guard refuses; any
	// error means the node is not rebooting. nil: reboot is not available.
	Reboot func(ctx context.Context, service string) error
	// ListenCheck checks through the kernel that one of pids listens on
	// port with room in its accept queue, and reports that queue's length
	// and backlog (-1 unknown). nil: listen_check is not done.
	ListenCheck func(port int, pids []int) (queue, backlog int, err error)
	// Probe replaces the real probes (tests).
	Probe func(ctx context.Context, c pfile.Check) error
	// Starvation, if set, opens a period of starvation evidence at each
	// probe round for the service whose processes pids returns (pkg/starve
	// through the daemon); nil: every failure counts.
	Starvation func(pids func() []int) func() probe.Judge
	// Observer is told of restarts, retry overs, stalls and probes
	// (metrics); nil: no one is.
	Observer Observer
	// Memory keeps Paused and RetryOver across pcheck restarts; nil keeps
	// nothing.
	Memory Memory
	// After is Clock's timer: the pauses between attempts and the re-arm
	// wait on it. nil is time.After (the monotonic clock).
	After func(time.Duration) <-chan time.Time
	// Jitter returns a number in [0, 1) by which a growing pause is made
	// up to a tenth shorter; nil is math/rand/v2.
	Jitter func() float64
	// ScanInterval is how often a restarted service's processes are looked
	// for besides exec events (from events where the backend keeps trees,
	// else by a scan); 0 is 100ms.
	ScanInterval time.Duration
	// IdleScanInterval is how often a service that is down and not to be
	// started (start_on_load no) is looked for; 0 is 1s.
	IdleScanInterval time.Duration
	// RunState keeps the running restart script and the watched trees
	// for a pcheck that starts after this one; nil keeps nothing.
	RunState RunState
	// ExitWait bounds the wait for a dead process's files to close before
	// its restart; 0 is 5s.
	ExitWait time.Duration
	// UnsafeSkipTrust makes the trust rule's refusals just before a
	// script runs warnings (--unsafe-skip-trust-check: tests only).
	UnsafeSkipTrust bool
}

// MonotonicClock is the real clock: time since the process started, which
// Go measures on the monotonic clock, unmoved by changes of the date.
type MonotonicClock struct{ start time.Time }

// NewMonotonicClock starts a clock at zero.
func NewMonotonicClock() *MonotonicClock { return &MonotonicClock{start: time.Now()} }

// Now is the time since the clock started.
func (c *MonotonicClock) Now() time.Duration { return time.Since(c.start) }
