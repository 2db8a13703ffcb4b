// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"sync"
	"time"

	"github.com/pwatch/pwatch/internal/quote"
	"github.com/pwatch/pwatch/pkg/msg"
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
	paused      bool    // Paused by padmin stop (or as carried, restored)
	stallReason string  // set when a stall check killed the service
	// requested is the restart request that killed the service, if one
	// did (with stallReason its reason).
	requested *RestartRequest
	ended     bool          // the loop has ended: no input is taken
	over      chan struct{} // closed once the loop has ended (Ended)
	// parked, while the loop's goroutine is gone (park), ends the wait
	// for its context's end; nil while the loop runs.
	parked   func() bool
	wake     chan struct{} // a new input is pending
	appeared chan struct{} // an exec of the service's executable was seen
	resync   chan struct{} // events were lost: scan /proc
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

	// The state machine's (machine.go), the loop's own; written under mu
	// where Status reads them. step is the step under way, since stepAt
	// (Clock time), bounded by stepBound (0: no bound of its own); timer
	// and ticker are its timer and its looks.
	step      step
	stepAt    time.Duration
	stepBound time.Duration
	timer     <-chan time.Time
	ticker    *time.Ticker
	// job is the generation of the step's job while it runs (nil: none);
	// jobCancel cancels it; jobs counts the jobs' goroutines.
	job       *uint64
	jobGen    uint64
	jobCancel context.CancelFunc
	jobs      sync.WaitGroup
	// rec is the recovery under way; dying the death whose leftovers are
	// killed; plan what begin does once its scan is in; stallCheck the
	// block whose stall is being killed.
	rec        *recovery
	dying      dying
	plan       beginPlan
	stallCheck int
	// deferred are the inputs that came while a step was under way, in
	// order; stopping: a padmin stop is among them (nothing new starts).
	deferred []input
	stopping bool

	runCtx     context.Context // Supervise's; stall checks run under it
	lookFrom   time.Time       // Supervise's since, until the first look; the loop's
	checks     []CheckStatus   // one per stall-check block
	checkGen   uint64          // counts Up spells; ties stalls to theirs
	stopChecks func()          // ends this Up spell's check runners
}

// New returns the supervisor of cfg; Supervise (or Run) starts it.
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
		over: make(chan struct{}),
	}
}

// Name is the service's name.
func (s *Service) Name() string { return s.cfg.Name }

// Config is the service's pfile.
func (s *Service) Config() *pfile.Service { return s.cfg }

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
