// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/opstate"
)

// The mailbox: what reaches a service from outside (exit and exec events,
// padmin's commands, a restart request) is queued here for its Run loop,
// which alone acts on it.

type inputKind int

const (
	inExit inputKind = iota + 1
	inStop
	inStart
	inKill    // a stall check wants the service's tree killed
	inRestart // a restart request (padmin restart, a broken limit)
	inDone    // the step's job ended
)

type input struct {
	kind  inputKind
	ev    exitwatch.Event // inExit
	done  chan<- error    // commands: given the result
	check int             // inKill: the block that found the stall
	gen   uint64          // inKill: the Up spell it was found in
	// inRestart: the request
	restart *RestartRequest
	// inDone: the job's generation and what it found
	job    uint64
	result *jobResult
}

// Exited hands the supervisor an exit event of one of its processes. It
// never blocks.
func (s *Service) Exited(ev exitwatch.Event) { s.push(input{kind: inExit, ev: ev}) }

// maxSpawned bounds the remembered starts of the executable.
const maxSpawned = 32

// Execed says a process started the service's executable: a restarted
// service is looked for now, among it and its tree. Never blocks.
func (s *Service) Execed(ev exitwatch.Event) {
	if ev.Argv != nil && !s.d.Processes.Admits(ev.ArgLine) {
		// Another service's start (one executable, other arguments): a
		// thousand such services must not each look at every start.
		return
	}
	s.mu.Lock()
	s.spawned = append(s.spawned, ev.ID)
	if len(s.spawned) > maxSpawned {
		s.spawned = slices.Clone(s.spawned[len(s.spawned)-maxSpawned:])
	}
	s.mu.Unlock()
	s.signal(s.appeared)
}

// Resync says events may have been lost: the next look scans /proc.
func (s *Service) Resync() { s.signal(s.resync) }

// signal wakes the loop through one of its 1-buffered channels, without
// blocking, and runs it again if it was parked. The send comes first: a
// loop about to park sees it (park looks under s.mu), or has parked and
// is run again here.
func (s *Service) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
	s.unpark()
}

// Stop pauses the service (padmin stop): its processes are left alone and
// no longer watched. A recovery under way is abandoned: the loop, which
// never blocks on a recovery, takes the stop at once (nothing is started
// from then on, a restart script is killed) and it returns once the loop
// has let go of the processes; a ctx that has ended already refuses it.
func (s *Service) Stop(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stop not accepted: %w", err)
	}
	// Kept before anything changes: a stop that a pcheck restart would
	// forget is refused whole (the loop keeps it again once it has let go).
	if err := s.keep(opstate.Paused); err != nil {
		return fmt.Errorf("not stopped: a pcheck restart would not know it is: %w", err)
	}
	return s.command(ctx, inStop)
}

// Start resumes a paused or retried-over service with its counters reset
// (padmin start); a service not running is started. It answers once the
// command is queued for the supervisor's loop, without waiting for it: a
// recovery under way finishes first, and a padmin must not wait for that
// (and then, timed out, have its start run anyway). A ctx that has ended
// already refuses it: nothing runs for a client that has gone.
func (s *Service) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start not accepted: %w", err)
	}
	// Cleared before anything changes: a start that a pcheck restart would
	// undo (stopping the service again) is refused whole.
	if s.d.Memory != nil {
		if err := s.d.Memory.Drop(s.cfg.Name); err != nil {
			return fmt.Errorf("not started: a pcheck restart would leave it as before: %w", err)
		}
	}
	if !s.push(input{kind: inStart}) {
		return errNotRunning
	}
	return nil
}

func (s *Service) command(ctx context.Context, k inputKind) error {
	return s.ask(ctx, input{kind: k})
}

// ask puts in in the mailbox and waits for the loop's answer.
func (s *Service) ask(ctx context.Context, in input) error {
	done := make(chan error, 1)
	in.done = done
	if !s.push(in) {
		return errNotRunning
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// push queues in for the loop; false once the loop has ended.
func (s *Service) push(in input) bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	s.pending = append(s.pending, in)
	s.mu.Unlock()
	s.signal(s.wake)
	return true
}

func (s *Service) next() (input, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return input{}, false
	}
	return takeFirst(&s.pending), true
}

// takeFirst takes the first of a non-empty queue. Neither the taken input
// (a job's result, a command) nor, once all are taken, the queue's array
// stays alive while the loop rests.
func takeFirst(q *[]input) input {
	in := (*q)[0]
	(*q)[0] = input{}
	*q = (*q)[1:]
	if len(*q) == 0 {
		*q = nil
	}
	return in
}

// refusePending answers the commands left when the loop ends (pcheck stopping,
// or a reload replacing this supervisor), so that no padmin waits for them.
func (s *Service) refusePending() {
	s.mu.Lock()
	pending := append(s.deferred, s.pending...)
	s.pending, s.deferred = nil, nil
	s.ended = true
	s.mu.Unlock()
	for _, in := range pending {
		if in.done != nil {
			in.done <- errNotRunning
		}
	}
}

var errNotRunning = errors.New("the service's supervisor stopped (pcheck is ending, or a reload replaced it): try again")
