// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pwatch/pwatch/internal/quote"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
)

// Reasons a recovery runs, passed to the restart script as PWATCH_REASON.
const (
	ReasonDown   = "down"
	ReasonStall  = "stall"
	ReasonSocket = "socket"
	ReasonStart  = "start"
	// ReasonRearm: rearm_after passed after a retry over.
	ReasonRearm = "rearm"
)

// Status is a service's state as padmin shows it.
type Status struct {
	Name     string
	State    State
	PIDs     []int
	UpSince  time.Duration // on the Clock; meaningful while Up
	Uptime   time.Duration
	Restarts int // restart attempts within grace
	// AttemptsLeft are the restart attempts retry_count still allows
	// within grace.
	AttemptsLeft int
	// Next is what is due next: NextAttempt (a pause between attempts is
	// under way), NextRearm (a retry over waits for rearm_after) or "";
	// NextIn is how long until then.
	Next   string
	NextIn time.Duration
	// LastEvent is the last catalogue message logged for the service.
	LastEvent   string
	LastEventAt time.Time
	// LastDeath is why a top-level process last died (nil: none yet).
	LastDeath   *msg.Ending
	LastDeathAt time.Time
}

// What Status.Next says is due.
const (
	NextAttempt = "attempt"
	NextRearm   = "rearm"
)

// Service supervises one pfile's service. Its Run loop owns the recovery
// flow; the daemon feeds it exit and exec events, padmin its commands.
type Service struct {
	cfg *pfile.Service
	d   Deps

	mu       sync.Mutex
	state    State
	top      []proc.Match    // the watched top-level processes, as last scanned
	upSince  time.Duration   // Clock time the service came Up
	attempts []time.Duration // Clock times of restart attempts, oldest first
	// streak counts the failed attempts in a row since the service was
	// last stable (the backoff's step); nextAt is when the next attempt
	// may start (Clock time).
	streak int
	nextAt time.Duration
	// fromRestart: the service is Up because pcheck restarted it (a death
	// before stable_uptime is then a failed attempt).
	fromRestart bool
	// rearming: a retry over waits until rearmAt (Clock time).
	rearming bool
	rearmAt  time.Duration
	// recReason and recPID are the recovery under way (reason and dead
	// pid), handed to a reload's new supervisor.
	recReason string
	recPID    int
	// lastSeen are the processes the looks for a service pcheck did not
	// start have found since lastSeenAt (settled).
	lastSeen    []proc.ID
	lastSeenAt  time.Time
	last        string
	lastAt      time.Time
	pending     []input // inputs not yet handled, in arrival order
	paused      bool    // padmin stop: set at once, before the loop sees it
	stallReason string  // set when a stall check killed the service
	// requested is the restart request that killed the service, if one
	// did (with stallReason its reason); killGrace is its SIGTERM's grace
	// while its kill runs.
	requested *RestartRequest
	killGrace time.Duration
	ended     bool          // Run has returned: no input is taken
	cancel    func()        // cancels the recovery under way, if any
	wake      chan struct{} // a new input is pending
	appeared  chan struct{} // an exec of the service's executable was seen
	resync    chan struct{} // events were lost: scan /proc
	// spawned are the processes seen starting the service's executable,
	// newest last: with their trees, where a restarted service is looked
	// for without a scan.
	spawned []proc.ID
	// survivors are the other top-level processes of a service one of
	// whose processes died: they are looked for again with the restarted.
	survivors []proc.ID
	// lastDeath is why a top-level process last died (nil before any).
	lastDeath   *msg.Ending
	lastDeathAt time.Time
	// lastDeathFor is the restart request that caused it (nil: none).
	lastDeathFor *RestartRequest
	// owned is what its restart script started as another user
	// (scriptowned.go).
	owned scriptOwned
	// busy is set while the loop handles an input; progressAt is when it
	// last moved on (Clock time), for the watchdog.
	busy       bool
	progressAt time.Duration

	runCtx     context.Context // Run's; stall checks run under it
	checks     []CheckStatus   // one per stall-check block
	checkGen   uint64          // counts Up spells; ties stalls to theirs
	stopChecks func()          // ends this Up spell's check runners
}

type inputKind int

const (
	inExit inputKind = iota + 1
	inStop
	inStart
	inKill    // a stall check wants the service's tree killed
	inRestart // a restart request (padmin restart, a broken limit)
)

type input struct {
	kind  inputKind
	ev    exitwatch.Event // inExit
	done  chan<- error    // commands: given the result
	check int             // inKill: the block that found the stall
	gen   uint64          // inKill: the Up spell it was found in
	// inRestart: the request
	restart *RestartRequest
}

// New returns the supervisor of cfg; Run starts it.
func New(cfg *pfile.Service, d Deps) *Service {
	if d.ScanInterval <= 0 {
		d.ScanInterval = 100 * time.Millisecond
	}
	if d.IdleScanInterval <= 0 {
		d.IdleScanInterval = time.Second
	}
	if d.ExitWait <= 0 {
		d.ExitWait = 5 * time.Second
	}
	if d.Observer == nil {
		d.Observer = noObserver{}
	}
	checks := make([]CheckStatus, len(cfg.Checks))
	for i, c := range cfg.Checks {
		checks[i] = CheckStatus{Check: c, Listen: ListenStatus{AcceptQueue: -1, Backlog: -1}}
	}
	return &Service{
		cfg: cfg, d: d, state: Down, checks: checks,
		wake: make(chan struct{}, 1), appeared: make(chan struct{}, 1), resync: make(chan struct{}, 1),
	}
}

// Name is the service's name.
func (s *Service) Name() string { return s.cfg.Name }

// Config is the service's pfile.
func (s *Service) Config() *pfile.Service { return s.cfg }

// Exited hands the supervisor an exit event of one of its processes. It
// never blocks.
func (s *Service) Exited(ev exitwatch.Event) { s.push(input{kind: inExit, ev: ev}) }

// maxSpawned bounds the remembered starts of the executable.
const maxSpawned = 32

// Execed says a process started the service's executable: a restarted
// service is looked for now, among it and its tree. Never blocks.
func (s *Service) Execed(ev exitwatch.Event) {
	if ev.Argv != nil && !s.d.Processes.Admits(ev.Argv) {
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
	signal(s.appeared)
}

// Resync says events may have been lost: the next look scans /proc.
func (s *Service) Resync() { signal(s.resync) }

// signal wakes whoever waits on a 1-buffered channel, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Stop pauses the service (padmin stop): its processes are left alone and
// no longer watched. A recovery under way is abandoned. It takes effect at
// once (nothing is restarted from then on) and returns once the loop has
// let go of the processes; a ctx that has ended already refuses it.
func (s *Service) Stop(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stop not accepted: %w", err)
	}
	// Kept before anything changes: a stop that a pcheck restart would
	// forget is refused whole (the loop keeps it again once it has let go).
	if err := s.keep(opstate.Paused); err != nil {
		return fmt.Errorf("not stopped: a pcheck restart would not know it is: %w", err)
	}
	s.mu.Lock()
	s.paused = true
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
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
	done := make(chan error, 1)
	if !s.push(input{kind: k, done: done}) {
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
	signal(s.wake)
	return true
}

func (s *Service) next() (input, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return input{}, false
	}
	in := s.pending[0]
	s.pending = s.pending[1:]
	return in, true
}

// Status is a snapshot for padmin.
func (s *Service) Status() Status {
	st := s.Kept()
	if st.State == Paused {
		// Nothing is watched while paused, but the processes still run:
		// show what runs now (a failed scan shows none rather than guess).
		if found, err := s.d.Processes.Find(); err == nil {
			st.PIDs = pidsOf(found)
		}
	}
	return st
}

// Kept is Status from what the supervisor keeps, never reading /proc (a
// paused service shows no pids): what /healthz answers from, however
// often it is asked.
func (s *Service) Kept() Status {
	s.mu.Lock()
	now := s.d.Clock.Now()
	recent := len(s.recentAttempts(now))
	st := Status{
		Name: s.cfg.Name, State: s.state, Restarts: recent, AttemptsLeft: max(s.cfg.RetryCount-recent, 0),
		LastEvent: s.last, LastEventAt: s.lastAt, LastDeath: s.lastDeath, LastDeathAt: s.lastDeathAt,
	}
	switch {
	case s.rearming && s.state == RetryOver:
		st.Next, st.NextIn = NextRearm, max(s.rearmAt-now, 0)
	case s.cancel != nil && s.nextAt > now && s.state == Down:
		st.Next, st.NextIn = NextAttempt, s.nextAt-now
	}
	for _, m := range s.top {
		st.PIDs = append(st.PIDs, m.ID.PID)
	}
	if s.state == Up {
		st.UpSince, st.Uptime = s.upSince, now-s.upSince
	}
	s.mu.Unlock()
	return st
}

// State is the service's current state.
func (s *Service) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Run supervises until ctx ends. Watched processes are left running.
func (s *Service) Run(ctx context.Context) {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	s.restoreScriptOwned()
	s.awaitRestartInFlight(ctx)
	s.begin(ctx, beginLoad)
	// A service Down and not being recovered (start_on_load no) or in
	// RetryOver is looked for now and then: it is adopted once someone
	// starts it.
	// Only such a service ticks: an Up one sleeps until an event.
	var idle *time.Ticker
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	defer s.refusePending()
	var rearmC <-chan time.Time
	var rearmFor time.Duration
	for {
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
		select {
		case <-ctx.Done():
			return
		case <-rearmC:
			rearmC = nil
			s.setBusy(true)
			s.rearm(ctx)
			s.setBusy(false)
		case <-s.wake:
		case <-s.appeared:
			s.lookForUnstarted(lookNow)
		case <-idleC:
			s.lookForUnstarted(lookIdle)
		case <-s.resync:
			// Lost events: a service that came back unseen is found, and
			// the trees of a running one are scanned anew.
			s.lookForUnstarted(lookFull)
			if s.State() == Up {
				s.retrack()
			}
		}
		for in, ok := s.next(); ok && ctx.Err() == nil; in, ok = s.next() {
			s.setBusy(true)
			s.handle(ctx, in)
			s.setBusy(false)
		}
	}
}

func (s *Service) setBusy(b bool) {
	s.mu.Lock()
	s.busy, s.progressAt = b, s.d.Clock.Now()
	s.mu.Unlock()
}

// progress says a long piece of work (a recovery) moved on a step.
func (s *Service) progress() {
	s.mu.Lock()
	s.progressAt = s.d.Clock.Now()
	s.mu.Unlock()
}

// stepSlack is added to the longest bounded step of a recovery before the
// supervisor counts as stuck.
const stepSlack = time.Minute

// Answering says whether the supervisor's loop is waiting for work, or
// busy with a step no longer than its bounds allow (a restart script's
// restart_timeout, a kill's kill_timeout, the longest pause between
// attempts, with a minute to spare). A stuck supervisor starves systemd's watchdog.
func (s *Service) Answering() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.busy {
		return true
	}
	bound := max(s.cfg.RestartTimeout, maxPause(s.cfg), 2*s.cfg.KillTimeout+s.d.ExitWait, s.killGrace+proc.DefaultKillWait) + stepSlack
	return s.d.Clock.Now()-s.progressAt <= bound
}

// refusePending answers the commands left when Run ends (pcheck stopping,
// or a reload replacing this supervisor), so that no padmin waits for them.
func (s *Service) refusePending() {
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.ended = true
	s.mu.Unlock()
	for _, in := range pending {
		if in.done != nil {
			in.done <- errNotRunning
		}
	}
}

var errNotRunning = errors.New("the service's supervisor stopped (pcheck is ending, or a reload replaced it): try again")

// How begin came to be called.
type beginHow int

const (
	beginLoad  beginHow = iota + 1 // Run starts; padmin start
	beginRearm                     // rearm_after passed
)

// begin adopts a running service, or starts it: pcheck's first start of it
// (start_on_load), which uses up no attempt; the recovery a reload
// interrupted, counted; or the restart of a re-arm, counted. A service
// left RetryOver (restored, carried) waits for its re-arm.
func (s *Service) begin(ctx context.Context, how beginHow) {
	s.mu.Lock()
	waits := s.paused || s.state == RetryOver
	carried, carriedPID := s.recReason, s.recPID
	s.mu.Unlock()
	if waits {
		return
	}
	found, err := s.d.Processes.Find()
	for err != nil {
		// Not knowing is not "not running": starting a running service
		// again could break it. Look again.
		s.d.Slog.Error("cannot scan for the service's processes; looking again", "service", s.cfg.Name, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.d.IdleScanInterval):
		}
		if s.Paused() {
			return
		}
		found, err = s.d.Processes.Find()
	}
	found = s.dropOrphans(ctx, found)
	if len(found) >= s.cfg.MinCount {
		s.watch(found)
		s.retrack()
		s.log(msg.Adopted(s.cfg.Name, pidsOf(found)))
		return
	}
	switch {
	case how == beginRearm:
		s.killTrees(ctx, found)
		s.recover(ctx, ReasonRearm, 0, false)
	case carried != "":
		s.killTrees(ctx, found)
		s.recover(ctx, carried, carriedPID, false)
	case s.cfg.StartOnLoad:
		s.killTrees(ctx, found)
		s.recover(ctx, ReasonStart, 0, true)
	}
	// start_on_load no: stays Down until its processes appear.
}

func (s *Service) handle(ctx context.Context, in input) {
	switch in.kind {
	case inExit:
		if st := s.State(); (st != Up && st != Stalled) || !s.owns(in.ev.ID) {
			return // an old identity's late news
		}
		reason, req := s.takeStallReason()
		ending := endingOf(in.ev, reason)
		s.log(msg.Down(s.cfg.Name, in.ev.ID.PID))
		s.log(msg.Ended(s.cfg.Name, in.ev.ID.PID, ending))
		s.recordDeath(ending, req)
		s.mu.Lock()
		uncounted := s.weighDeathLocked(req)
		s.moveLocked(Down)
		s.mu.Unlock()
		s.afterDeath(ctx, in.ev.ID)
		s.recover(ctx, reason, in.ev.ID.PID, uncounted)
	case inStop:
		s.unwatchAll()
		s.mu.Lock()
		s.moveLocked(Paused)
		s.rearming, s.recReason = false, ""
		s.mu.Unlock()
		if err := s.keep(opstate.Paused); err != nil {
			in.done <- fmt.Errorf("stopped, but a pcheck restart would not know: %w", err)
			return
		}
		in.done <- nil
	case inStart:
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
	case inKill:
		s.killForStall(ctx, in)
	case inRestart:
		s.killForRestart(ctx, in)
	}
}

// retrack closes the window between the scan that found the running
// service and the moment the backend held its trees: what was forked in
// between is found by a second scan (at start, reload and after lost
// events only) and put in its tree.
func (s *Service) retrack() {
	if !s.d.Watcher.KeepsTrees() {
		return
	}
	found, err := s.d.Processes.Find()
	if err != nil {
		return
	}
	for _, m := range found {
		if s.owns(m.ID) {
			s.d.Watcher.Watch(m)
		}
	}
}

// lookForUnstarted adopts the processes of a service that is down and not
// being recovered (start_on_load no), or whose retries are over, once they
// appear (someone started it by hand).
func (s *Service) lookForUnstarted(how lookFor) {
	if !s.idleLooks() {
		return
	}
	from := s.State()
	if found, _, err := s.look(how); err == nil && s.settled(found) {
		s.adoptByHand(found, from)
	}
}

// idleLooks says whether the service is down and not being recovered, or
// retried over: looked for now and then, to be adopted.
func (s *Service) idleLooks() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.state == Down || s.state == RetryOver) && !s.paused && s.cancel == nil
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

// Paused says padmin stopped the service (at once, before its loop has
// acted on it).
func (s *Service) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

func (s *Service) owns(id proc.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.top, func(m proc.Match) bool { return m.ID == id })
}

// watch makes found the watched top-level processes and the service Up.
func (s *Service) watch(found []proc.Match) {
	s.mu.Lock()
	s.top = found
	s.survivors = nil
	s.moveLocked(Up)
	s.upSince = s.d.Clock.Now()
	s.fromRestart, s.recReason = false, ""
	s.stallReason, s.requested = "", nil // a kill's reason belongs to its own death
	s.mu.Unlock()
	for _, m := range found {
		s.d.Watcher.Watch(m)
	}
	s.recordTrees(found)
}

func (s *Service) unwatchAll() {
	s.mu.Lock()
	top := s.top
	s.top = nil
	s.mu.Unlock()
	for _, m := range top {
		s.d.Watcher.Unwatch(m.ID)
	}
}

// How fresh a look's scan of /proc must be.
type lookFor int

const (
	// lookPeriodic: a read begun within ScanInterval will do; every
	// service looking periodically shares it.
	lookPeriodic lookFor = iota
	// lookIdle: a read begun within IdleScanInterval will do (the looks
	// for a service that is down and not being recovered).
	lookIdle
	// lookIdleFull: lookIdle's read, even where events could answer.
	lookIdleFull
	// lookNow: a read begun after the look (an exec was just seen).
	lookNow
	// lookFull: a read begun after the look, even where events could
	// answer (events were lost).
	lookFull
)

// look finds the service's top-level processes. Where the backend keeps
// trees and the matcher decides pid by pid, it looks among the processes
// events told of (those that started the executable, the survivors of a
// death, and their trees) and reads /proc only for them; otherwise, or
// with lookFull, it scans all of /proc, in a read shared with the other
// services. fromEvents says which it did.
func (s *Service) look(how lookFor) (found []proc.Match, fromEvents bool, err error) {
	if how != lookFull && how != lookIdleFull && s.d.Watcher.KeepsTrees() {
		if found, ok, err := s.lookAmongEvents(); ok {
			return found, true, err
		}
	}
	switch how {
	case lookPeriodic:
		found, err = s.d.Processes.FindRecent(s.d.ScanInterval)
	case lookIdle, lookIdleFull:
		found, err = s.d.Processes.FindRecent(s.d.IdleScanInterval)
	default:
		found, err = s.d.Processes.Find()
	}
	return found, false, err
}

func (s *Service) lookAmongEvents() ([]proc.Match, bool, error) {
	s.mu.Lock()
	roots := append(slices.Clone(s.spawned), s.survivors...)
	s.mu.Unlock()
	var cands []proc.Process
	var gone []proc.ID
	for _, r := range roots {
		tree, ok := s.d.Watcher.Tree(r)
		if !ok {
			return nil, false, nil
		}
		if alive, err := s.d.Processes.Alive(r); err == nil && !alive && len(tree) == 0 {
			gone = append(gone, r)
			continue
		}
		cands = append(cands, proc.Process{ID: r})
		cands = append(cands, tree...)
	}
	s.mu.Lock()
	s.spawned = slices.DeleteFunc(s.spawned, func(id proc.ID) bool { return slices.Contains(gone, id) })
	s.mu.Unlock()
	return s.d.Processes.Among(cands)
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

// log writes a catalogue message and remembers it as the last event.
func (s *Service) log(m msg.Message) {
	s.mu.Lock()
	s.last, s.lastAt = m.Text, time.Now()
	s.mu.Unlock()
	s.d.Log.Log(m)
}

// scriptLogger logs one line of a script's output.
func (s *Service) scriptLogger(script string) func(string) {
	return func(line string) {
		s.d.Slog.Info("script output", "service", s.cfg.Name, "script", script, "line", quote.String(line))
	}
}

func pidsOf(ms []proc.Match) []int {
	pids := make([]int, len(ms))
	for i, m := range ms {
		pids[i] = m.ID.PID
	}
	return pids
}

// killedBy names, for the ending line, what in pcheck killed a service
// for each recovery reason that is pcheck's own kill.
var killedBy = map[string]string{
	ReasonStall: "stall check", ReasonSocket: "stall check",
	ReasonOperator: "padmin restart", ReasonLimit: "limit",
}

// endingOf is how and why the process of ev ended; reason is the
// recovery's: a stall check's kill is pcheck's own.
func endingOf(ev exitwatch.Event, reason string) msg.Ending {
	e := msg.Ending{Known: ev.Known, ExitStatus: ev.ExitStatus, Signal: ev.Signal, CoreDumped: ev.CoreDumped}
	switch {
	case ev.OOM != nil:
		e.OOM, e.Memcg, e.RSSKiB = true, ev.OOM.Memcg, ev.OOM.RSSKiB
	case ev.Known && ev.Signal != 0 && killedBy[reason] != "":
		e.ByPcheck = killedBy[reason]
	case ev.Sender != nil:
		e.SenderPID, e.SenderComm, e.SenderUID = ev.Sender.PID, ev.Sender.Comm, ev.Sender.UID
	}
	return e
}

// recordDeath keeps the last death's cause for padmin and the scripts, and
// counts it.
func (s *Service) recordDeath(e msg.Ending, req *RestartRequest) {
	s.mu.Lock()
	s.lastDeath, s.lastDeathAt, s.lastDeathFor = &e, time.Now(), req
	s.mu.Unlock()
	s.d.Observer.Death(s.cfg.Name, e.Cause())
}

// causeEnv tells a script why the service last died (nothing for a start).
func causeEnv(e *msg.Ending) []string {
	if e == nil {
		return nil
	}
	env := []string{"PWATCH_CAUSE=" + e.Cause()}
	if !e.Known {
		return env
	}
	if e.Signal == 0 && !e.OOM {
		return append(env, "PWATCH_EXIT_STATUS="+strconv.Itoa(e.ExitStatus))
	}
	env = append(env, "PWATCH_SIGNAL="+strconv.Itoa(e.Signal))
	if e.SenderPID != 0 && e.ByPcheck == "" {
		env = append(env, "PWATCH_SENDER_PID="+strconv.Itoa(e.SenderPID), "PWATCH_SENDER_COMM="+quote.String(e.SenderComm))
	}
	return env
}
