// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"fmt"
	"time"

	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/proc"
)

// The state machine. A service has a State (Up, Down, Restarting,
// Stalled, Paused, RetryOver: state.go, what padmin shows) and, while
// pcheck works on it, a step: a named wait of its Run loop with at most one
// job (a kill, a script, a scan, run in a goroutine of its own) and one
// timer. The loop never blocks on the work: it waits for the next input
// and acts on it at once. Inputs are the mailbox's (exit events, Stop,
// Start, stall kills, restart requests), a job's end, the step's timer,
// the looks (an exec of the executable, a look tick, lost events) and the
// end of the recovery's time (padmin stop, recovery_timeout).
//
//	in flight --> starting --running: adopted--> Up <------------------------+
//	                 |                            |  \                        |
//	                 | not running                |   \ stall kill,           |
//	                 | (start_on_load no:       exit   \ restart request      |
//	                 |  rest, Down, looks)        |    v                      |
//	                 |                            |  killing the tree         |
//	                 |                            |  (Stalled) --exit--+      |
//	                 |                            v                    |      |
//	                 |                        leftovers (Down) <-------+      |
//	                 v                            |                           |
//	              pausing (Down) <----------------+                           |
//	               |  |  \ hand start: Up                                     |
//	               |  |   +--timer--> script (Restarting) --ok--> awaiting ---+ found
//	               |  |                  | fails                  | restart_timeout
//	               |  |                  v                        v
//	               |  +<--- failed --- settling <-----------------+
//	               |                 (late processes found: Up)
//	               +-- retries over: retry-over script --> RetryOver (rest)
//
// A step with nothing to wait for is passed through (no pause due: the
// script runs at once; after a failed attempt a service found running is
// adopted instead). Stop ends every step (a script is killed, a pause or an await ends; a
// kill in flight and the retry-over script run to their own bound) and
// leaves the service Paused. Start, and any input that comes while a step
// is under way, waits until the loop is at rest (no step) again, as the
// queue of a call stack would have: a recovery runs to its end first.

// step is the part of a recovery (or a kill) the loop waits in.
type step int

const (
	stepRest            step = iota // no work under way: Up, Down waiting, RetryOver, Paused
	stepInFlight                    // job: the previous pcheck's restart script still runs: waited for
	stepStarting                    // job: looking for the running service (and killing a partial one)
	stepLeftovers                   // job: killing what is left of a dead process, its files closing
	stepPausing                     // timer: the pause between attempts; looks for a start by hand
	stepScript                      // job: the restart script runs (restart_timeout)
	stepAwaiting                    // timer: min_count processes awaited (restart_timeout); looks
	stepSettling                    // job: killing what a failed attempt started
	stepStallKill                   // job: killing the tree for a stall
	stepRestartKill                 // job: killing the tree for a restart request
	stepRetryOverScript             // job: retry_over_script runs
)

// stepDef is one step's row of the transition table: what each input does
// in it. A nil entry: the input cannot happen in this step.
type stepDef struct {
	name string
	// looks says the step hears execs and look ticks (appeared), resync
	// lost events: elsewhere they wait.
	looks, resync bool
	// done: its job ended.
	done func(s *Service, ctx context.Context, r jobResult)
	// timer: its timer fired (or the attempt's restart_timeout passed).
	timer func(s *Service, ctx context.Context)
	// look: an exec was seen (lookNow), a look tick, lost events
	// (lookFull).
	look func(s *Service, ctx context.Context, how lookFor)
	// recEnd: the recovery's time ended (padmin stop, recovery_timeout,
	// pcheck's end); nil: the step's job runs on and its end decides.
	recEnd func(s *Service, ctx context.Context)
}

// steps is the transition table: each step × each input, in one place.
// Inputs not in it (exit events, Start, stall kills, restart requests)
// wait while a step is under way and are handled at rest (handleAtRest);
// Stop is taken in every step (stop). It is filled in init: its handlers
// reach the loop again (an input runs a parked loop), which reads it.
var steps map[step]*stepDef

func init() { steps = stepTable() }

func stepTable() map[step]*stepDef {
	return map[step]*stepDef{
		stepRest:      {name: "", looks: true, resync: true, look: (*Service).restLook},
		stepInFlight:  {name: "waiting for the previous pcheck's restart script", done: (*Service).inFlightOver},
		stepStarting:  {name: "looking for its processes", done: (*Service).started},
		stepLeftovers: {name: "killing leftovers", done: (*Service).leftoversKilled},
		stepPausing: {name: "pausing", looks: true, timer: (*Service).pauseOver,
			look: (*Service).pauseLook, recEnd: (*Service).endRecovery},
		stepScript: {name: "script running", done: (*Service).scriptExited},
		stepAwaiting: {name: "awaiting processes", looks: true, resync: true, timer: (*Service).awaitOver,
			look: (*Service).awaitLook, recEnd: (*Service).awaitOver},
		stepSettling:        {name: "killing what the failed attempt started", done: (*Service).settleDone},
		stepStallKill:       {name: "killing the tree (stall)", done: (*Service).stallKilled},
		stepRestartKill:     {name: "killing the tree (restart)", done: (*Service).restartKilled},
		stepRetryOverScript: {name: "retry_over_script running", done: (*Service).retryOverScriptExited},
	}
}

// Run supervises until ctx ends and the loop has let go: Supervise, then
// a wait for Ended. Watched processes are left running.
func (s *Service) Run(ctx context.Context) {
	s.Supervise(ctx, time.Time{})
	<-s.Ended()
}

// Supervise starts supervising, until ctx ends, and returns at once. The
// service's processes are watched from since on (its exec watch set): its
// first look may use a read of /proc begun then or later, which the
// services started together share: a start or a reload of a thousand
// services reads /proc once for their first looks. The zero since is a
// read begun at the look. Call it once.
func (s *Service) Supervise(ctx context.Context, since time.Time) {
	go func() {
		s.ready(ctx, since)
		s.loop(ctx)
	}()
}

// Ended is closed once the loop has ended (its ctx ended) and holds
// nothing of its own any more: no job, no timer, no command unanswered.
func (s *Service) Ended() <-chan struct{} { return s.over }

// ready readies the loop: the previous pcheck's restart script first, if
// one still runs (its service is awaited, so as not to start a second
// copy).
func (s *Service) ready(ctx context.Context, since time.Time) {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	s.lookFrom = since
	s.restoreScriptOwned()
	s.startJob(ctx, stepInFlight, 2*s.cfg.RestartTimeout, func(ctx context.Context) jobResult {
		return jobResult{waited: s.awaitRestartInFlight(ctx)}
	})
}

// loop takes the service's inputs until ctx ends. A service with nothing
// due but its inputs (at rest, no timer, no ticks: an Up service without
// stall checks' kills pending) parks instead of sleeping: its goroutine
// ends, and the next input runs the loop again on a new one. A sleeping
// goroutine's stack was the largest part of what a service cost at rest
// (4 KiB, after the frames it sleeps in were made small enough for the
// runtime to halve the 8 KiB a look grew: BenchmarkRestingStack).
func (s *Service) loop(ctx context.Context) {
	var idle *time.Ticker
	var rearmC <-chan time.Time
	var rearmFor time.Duration
	for {
		// A service Down and not being recovered (start_on_load no) or
		// in RetryOver is looked for now and then: it is adopted once
		// someone starts it. Only such a service ticks: an Up one sleeps
		// until an event.
		var idleC <-chan time.Time
		switch looks := s.idleLooks(); {
		case looks && idle == nil:
			idle = time.NewTicker(s.d.IdleScanInterval)
			idleC = idle.C
		case looks:
			idleC = idle.C
		case idle != nil:
			idle.Stop()
			idle = nil
		}
		if at, ok := s.rearmDue(); !ok {
			rearmC = nil
		} else if rearmC == nil || at != rearmFor {
			rearmFor, rearmC = at, s.after(at-s.d.Clock.Now())
		}
		if idle == nil && rearmC == nil && s.park(ctx) {
			return
		}
		if !s.wait(ctx, idleC, &rearmC) {
			break
		}
		s.takeInputs(ctx)
	}
	if idle != nil {
		idle.Stop()
	}
	s.drain(ctx)
	s.refusePending()
	close(s.over)
}

// park ends the loop's goroutine if nothing but an input can wake the
// loop and none is waiting: at rest (no job, no recovery), or while a
// step's job runs and the step has nothing of its own to hear (no timer,
// ticker or looks; the recovery's end aside). A job's end is an input: a
// start of thousands of services then holds one goroutine each, its
// job's, not two (Go keeps a goroutine's record for ever once made).
// signal (an input), ctx's end or the recovery's runs it again. Parked is
// set under s.mu, where signal's unpark looks for it after its send: an
// input sent before is seen here, one sent after finds the loop parked.
func (s *Service) park(ctx context.Context) bool {
	def := steps[s.step]
	atRest := s.step == stepRest && s.job == nil && s.rec == nil
	onJob := s.job != nil && def.done != nil && def.timer == nil && !def.looks && !def.resync
	if !atRest && !onJob || s.timer != nil || s.ticker != nil {
		return false
	}
	var recCtx context.Context
	if s.rec != nil && !s.rec.ended {
		recCtx = s.rec.ctx
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 || len(s.wake) > 0 || def.looks && len(s.appeared) > 0 || def.resync && len(s.resync) > 0 {
		return false
	}
	// (an ended ctx: its AfterFunc would run unpark at once, for ever)
	if ctx.Err() != nil || recCtx != nil && recCtx.Err() != nil {
		return false
	}
	stopCtx := context.AfterFunc(ctx, s.unpark)
	s.parked = stopCtx
	if recCtx != nil {
		stopRec := context.AfterFunc(recCtx, s.unpark)
		s.parked = func() bool { a, b := stopCtx(), stopRec(); return a && b }
	}
	return true
}

// unpark runs a parked loop again, on a goroutine of its own.
func (s *Service) unpark() {
	s.mu.Lock()
	stop := s.parked
	s.parked = nil
	ctx := s.runCtx
	s.mu.Unlock()
	if stop == nil {
		return // running already
	}
	stop() // (false when ctx's end is what runs it)
	go s.loop(ctx)
}

// takeInputs handles the mailbox's inputs until it is empty or ctx has
// ended (ctx first: an input taken is an input handled; the drain handles
// a job's end that came after). An input is large: its copies stay in
// this frame, off a sleeping service's stack.
func (s *Service) takeInputs(ctx context.Context) {
	for ctx.Err() == nil {
		in, waited, ok := s.nextInput()
		if !ok {
			return
		}
		s.setBusy(true)
		if waited {
			s.handleAtRest(ctx, in)
		} else {
			s.handle(ctx, in)
		}
		s.setBusy(false)
	}
}

// wait waits for the next input that is not queued in the mailbox (an
// exec, a tick, a timer, the recovery's end) and handles it; false once
// ctx has ended.
func (s *Service) wait(ctx context.Context, idleC <-chan time.Time, rearmC *<-chan time.Time) bool {
	def := steps[s.step]
	var appeared, resync <-chan struct{}
	if def.looks {
		appeared = s.appeared
	}
	if def.resync {
		resync = s.resync
	}
	var tickC <-chan time.Time
	if s.ticker != nil {
		tickC = s.ticker.C
	}
	var recDone <-chan struct{}
	if s.rec != nil && !s.rec.ended {
		recDone = s.rec.ctx.Done()
	}
	s.setBusy(false)
	select {
	case <-ctx.Done():
		return false
	case <-*rearmC:
		*rearmC = nil
		s.setBusy(true)
		s.rearm(ctx)
	case <-s.wake:
	case <-appeared:
		s.setBusy(true)
		def.look(s, ctx, lookNow)
	case <-idleC:
		s.setBusy(true)
		def.look(s, ctx, lookIdle)
	case <-tickC:
		s.setBusy(true)
		def.look(s, ctx, lookTick)
	case <-resync:
		s.setBusy(true)
		def.look(s, ctx, lookFull)
	case <-s.timer:
		s.setBusy(true)
		s.timer = nil
		def.timer(s, ctx)
	case <-recDone:
		s.setBusy(true)
		s.rec.ended = true
		if def.recEnd != nil {
			def.recEnd(s, ctx)
		}
	}
	s.setBusy(false)
	return true
}

// handle takes one input of the mailbox. Stop and a job's end are taken
// in every step; the others wait until the loop is at rest.
func (s *Service) handle(ctx context.Context, in input) {
	switch {
	case in.kind == inStop:
		s.stop(in)
	case in.kind == inDone && in.job != s.jobGen:
		// a job whose step is over (it cannot be: one job at a time)
	case in.kind == inDone:
		s.mu.Lock()
		// The ended job's cancel would keep its context chain (the
		// attempt's and the recovery's) alive until the next job.
		s.job, s.jobCancel = nil, nil
		s.mu.Unlock()
		steps[s.step].done(s, ctx, *in.result)
	case s.step != stepRest || len(s.deferred) > 0:
		s.deferred = append(s.deferred, in) // in order, behind those waiting
	default:
		s.handleAtRest(ctx, in)
	}
}

// handleAtRest takes an input with no step under way.
func (s *Service) handleAtRest(ctx context.Context, in input) {
	switch in.kind {
	case inExit:
		if st := s.State(); (st != Up && st != Stalled) || !s.owns(in.ev.ID) {
			return // an old identity's late news
		}
		s.died(ctx, in.ev)
	case inStart:
		s.start(ctx)
	case inKill:
		s.killForStall(ctx, in)
	case inRestart:
		s.killForRestart(ctx, in)
	case inStop:
		s.pause(in)
	}
}

// inFlightOver: no restart script of the previous pcheck runs (any
// more): the service is adopted, or started.
func (s *Service) inFlightOver(ctx context.Context, res jobResult) {
	s.rest()
	if res.waited { // the first look is of now
		s.lookFrom = time.Time{}
	}
	s.begin(ctx, beginLoad)
}

// stop takes padmin stop in any step: nothing is started from now on, the
// recovery's time ends (a script is killed, a pause or an await ends), and
// once the loop is at rest the service is Paused. Inputs that came before
// it are handled first.
func (s *Service) stop(in input) {
	s.stopping = true
	if s.rec != nil {
		s.rec.cancel()
	}
	if s.step == stepStarting && s.jobCancel != nil {
		s.jobCancel()
	}
	s.deferred = append(s.deferred, in)
}

// pause makes the service Paused (the stop, at rest).
func (s *Service) pause(in input) {
	s.unwatchAll()
	s.mu.Lock()
	s.stopping = false
	s.moveLocked(Paused)
	s.paused, s.rearming, s.recReason = true, false, ""
	s.mu.Unlock()
	if err := s.keep(opstate.Paused); err != nil {
		in.done <- fmt.Errorf("stopped, but a pcheck restart would not know: %w", err)
		return
	}
	in.done <- nil
}

// start takes padmin start at rest.
func (s *Service) start(ctx context.Context) {
	s.forget()
	s.mu.Lock()
	s.paused = false
	s.attempts, s.streak, s.nextAt, s.rearming, s.recReason = nil, 0, 0, false, ""
	for i := range s.checks {
		s.checks[i].Stopped = false
	}
	resume := s.state == Paused || s.state == RetryOver
	if resume {
		s.moveLocked(Down)
	}
	if s.state == Up { // checks stopped by error 1 run again
		s.stopChecksLocked()
		s.startChecksLocked()
	}
	s.mu.Unlock()
	if resume {
		s.begin(ctx, beginLoad)
	}
}

// died takes the death of a watched top-level process: logged with its
// ending, weighed by the policy, and what is left of it killed before the
// recovery.
func (s *Service) died(ctx context.Context, ev exitwatch.Event) {
	reason, req := s.takeStallReason()
	ending := endingOf(ev, reason)
	s.log(msg.Down(s.cfg.Name, ev.ID.PID))
	s.log(msg.Ended(s.cfg.Name, ev.ID.PID, ending))
	s.recordDeath(ending, req)
	s.mu.Lock()
	uncounted := s.weighDeathLocked(req)
	s.moveLocked(Down)
	s.mu.Unlock()
	s.dying = dying{reason: reason, pid: ev.ID.PID, first: uncounted}
	s.killLeftovers(ctx, ev.ID)
}

// takeStallReason is the reason for the recovery of a death: the stall
// check's or the restart request's if it killed the service (with the
// request), else down.
func (s *Service) takeStallReason() (string, *RestartRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, req := s.stallReason, s.requested
	s.stallReason, s.requested = "", nil
	if r == "" {
		return ReasonDown, nil
	}
	return r, req
}

// weighDeathLocked weighs a death for the restart policy and says whether
// its first restart attempt is not counted: a padmin restart never is; a
// broken limit is, as a death is, when it comes within stable_uptime of a
// restart by pcheck. s.mu is held.
func (s *Service) weighDeathLocked(req *RestartRequest) (uncounted bool) {
	switch {
	case req == nil:
		s.diedLocked()
		return false
	case req.Reason == ReasonLimit:
		return !s.diedLocked()
	}
	return true
}

func (s *Service) setState(to State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moveLocked(to)
}

// moveLocked changes the state along the transition table; a move it does
// not allow is a bug, logged and not made. s.mu is held.
func (s *Service) moveLocked(to State) {
	if s.state == to {
		return
	}
	if !canMove(s.state, to) {
		s.d.Slog.Error("refused a state transition that is not allowed", "service", s.cfg.Name, "from", s.state, "to", to)
		return
	}
	from := s.state
	s.state = to
	switch {
	case to == Up:
		s.startChecksLocked()
	case from == Up:
		s.stopChecksLocked()
	}
}

// jobResult is what a step's job found.
type jobResult struct {
	found  []proc.Match
	err    error
	script proc.ID   // stepScript: the restart script's identity
	failed bool      // stepStallKill, stepRestartKill: a top-level process outlived SIGKILL
	waited bool      // stepInFlight: it waited for the previous pcheck's script
	left   []proc.ID // stepRestartKill: those that outlived it
}

// startJob enters st and runs job in a goroutine of its own under ctx;
// its end comes back as an input (inDone). bound is how long the step may
// take before the watchdog counts the service as stuck (0: the loop's
// own bound).
func (s *Service) startJob(ctx context.Context, st step, bound time.Duration, job func(context.Context) jobResult) {
	jctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.jobGen++
	gen := s.jobGen
	s.job, s.jobCancel = &gen, cancel
	s.mu.Unlock()
	s.setStep(st, bound)
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		r := job(jctx)
		cancel()
		s.push(input{kind: inDone, job: gen, result: &r})
	}()
}

// setStep enters st, with no timer; bound as for startJob.
func (s *Service) setStep(st step, bound time.Duration) {
	s.stopTimers()
	s.mu.Lock()
	s.step, s.stepAt, s.stepBound = st, s.d.Clock.Now(), bound
	s.mu.Unlock()
}

// setTimer arms the step's timer.
func (s *Service) setTimer(c <-chan time.Time) { s.timer = c }

// setTicker makes the step look every d.
func (s *Service) setTicker(d time.Duration) {
	if s.ticker != nil {
		s.ticker.Stop()
	}
	s.ticker = time.NewTicker(d)
}

func (s *Service) stopTimers() {
	s.timer = nil
	if s.ticker != nil {
		s.ticker.Stop()
		s.ticker = nil
	}
}

// rest ends the step: the loop is at rest, and what waited is handled.
func (s *Service) rest() { s.setStep(stepRest, 0) }

// nextInput is the next input to handle: at rest, those that waited
// first (waited), in their order, then the mailbox's.
func (s *Service) nextInput() (in input, waited, ok bool) {
	if s.step == stepRest && s.job == nil && len(s.deferred) > 0 {
		return takeFirst(&s.deferred), true, true
	}
	in, ok = s.next()
	return in, false, ok
}

// drain, once ctx has ended, ends the recovery and waits for the job under
// way (a kill runs to its bound), handling its end: the loop ends with
// nothing of its own running.
func (s *Service) drain(ctx context.Context) {
	if s.rec != nil {
		s.rec.cancel()
	}
	for {
		for in, ok := s.next(); ok; in, ok = s.next() {
			if in.kind == inDone {
				s.handle(ctx, in)
			} else {
				s.deferred = append(s.deferred, in)
			}
		}
		if s.job == nil {
			break
		}
		<-s.wake
	}
	s.jobs.Wait()
	s.stopTimers()
	if s.rec != nil {
		s.rec.cancelAttempt()
		s.rec.cancel()
		s.mu.Lock()
		s.rec = nil
		s.mu.Unlock()
	}
}
