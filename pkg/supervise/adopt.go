// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"slices"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
)

// Adoption: finding the service's processes (at start, after lost events,
// and when someone starts it by hand) and watching them.

// How begin came to be called.
type beginHow int

const (
	beginLoad  beginHow = iota + 1 // Run starts; padmin start
	beginRearm                     // rearm_after passed
)

// beginPlan is what begin found to do once the scan is in.
type beginPlan struct {
	how     beginHow
	carried string // the recovery a reload interrupted
	pid     int
	starts  bool // the service is started if it is not running
}

// begin adopts a running service, or starts it: pcheck's first start of it
// (start_on_load), which uses up no attempt; the recovery a reload
// interrupted, counted; or the restart of a re-arm, counted. A service
// left RetryOver (restored, carried) waits for its re-arm. The scan (and
// the kill of what runs of a service not min_count strong) is a job:
// stepStarting.
func (s *Service) begin(ctx context.Context, how beginHow) {
	s.mu.Lock()
	waits := s.paused || s.stopping || s.state == RetryOver
	p := beginPlan{how: how, carried: s.recReason, pid: s.recPID}
	s.mu.Unlock()
	if waits {
		return
	}
	p.starts = how == beginRearm || p.carried != "" || s.cfg.StartOnLoad
	s.plan = p
	from := s.lookFrom // the first look only (Supervise)
	s.lookFrom = time.Time{}
	s.startJob(ctx, stepStarting, 0, func(jctx context.Context) jobResult {
		find := s.d.Processes.Find
		if !from.IsZero() {
			find = func() ([]proc.Match, error) { return s.d.Processes.FindSince(from) }
		}
		found, err := find()
		for err != nil {
			// Not knowing is not "not running": starting a running
			// service again could break it. Look again.
			s.d.Slog.Error("cannot scan for the service's processes; looking again", "service", s.cfg.Name, "error", err)
			select {
			case <-jctx.Done():
				return jobResult{err: jctx.Err()}
			case <-time.After(s.d.IdleScanInterval):
			}
			found, err = s.d.Processes.Find()
		}
		found = s.dropOrphans(ctx, found)
		if len(found) < s.cfg.MinCount && p.starts {
			s.killTrees(ctx, found)
		}
		return jobResult{found: found}
	})
}

// started: the scan is in; the service is adopted, or started.
func (s *Service) started(ctx context.Context, res jobResult) {
	s.rest()
	p := s.plan
	if res.err != nil {
		return // stopped, or pcheck ends
	}
	if found := res.found; len(found) >= s.cfg.MinCount {
		s.watch(found, false, msg.Adopted(s.cfg.Name, pidsOf(found)))
		s.retrack() // after the line, as before: what forked meanwhile joins its tree
		return
	}
	switch {
	case p.how == beginRearm:
		s.startRecovery(ctx, ReasonRearm, 0, false)
	case p.carried != "":
		s.startRecovery(ctx, p.carried, p.pid, false)
	case s.cfg.StartOnLoad:
		s.startRecovery(ctx, ReasonStart, 0, true)
	}
	// start_on_load no: stays Down until its processes appear.
}

// restLook is a look at rest: a service down and not being recovered, or
// retried over, is adopted once it appears; after lost events the trees
// of a running one are scanned anew.
func (s *Service) restLook(_ context.Context, how lookFor) {
	s.lookForUnstarted(how)
	if how == lookFull && s.State() == Up {
		s.retrack()
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
	return (s.state == Down || s.state == RetryOver) && !s.paused && s.rec == nil && s.step == stepRest
}

func (s *Service) owns(id proc.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.top, func(m proc.Match) bool { return m.ID == id })
}

// watch makes found the watched top-level processes and the service Up
// (fromRestart: pcheck restarted it), and then logs lines (the Up lines,
// or the adoption's): every way to Up passes here, and logs its line once
// the service is watched and Up.
func (s *Service) watch(found []proc.Match, fromRestart bool, lines ...msg.Message) {
	s.mu.Lock()
	s.top = found
	s.survivors = nil
	s.mu.Unlock()
	// Watched before it shows Up: one who sees it Up and kills it is
	// sure to be seen (its exit event waits for this loop).
	for _, m := range found {
		s.d.Watcher.Watch(m)
	}
	s.mu.Lock()
	s.moveLocked(Up)
	s.upSince = s.d.Clock.Now()
	s.fromRestart, s.recReason = fromRestart, ""
	s.stallReason, s.requested = "", nil // a kill's reason belongs to its own death
	s.mu.Unlock()
	s.recordTrees(found)
	for _, m := range lines {
		s.log(m)
	}
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
	// lookTick: the step's look ticker fired; the step says which look
	// that is.
	lookTick
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
		found, err = s.d.Processes.FindSince(time.Now().Add(-s.d.ScanInterval))
	case lookIdle, lookIdleFull:
		found, err = s.d.Processes.FindSince(time.Now().Add(-s.d.IdleScanInterval))
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

// settled says whether found, min_count processes of a service pcheck did
// not start, were found by looks for at least IdleScanInterval (real time:
// a debounce, not a policy): a start by hand is adopted once its processes
// stay, not at the exec of a launcher that forks the daemon and exits
// (nginx, apache2 through apache2ctl).
func (s *Service) settled(found []proc.Match) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(found) < s.cfg.MinCount {
		s.lastSeen = nil
		return false
	}
	ids := make([]proc.ID, 0, len(found))
	for _, m := range found {
		ids = append(ids, m.ID)
	}
	slices.SortFunc(ids, func(a, b proc.ID) int { return a.PID - b.PID })
	if !slices.Equal(ids, s.lastSeen) {
		s.lastSeen, s.lastSeenAt = ids, time.Now()
		return false
	}
	return time.Since(s.lastSeenAt) >= s.d.IdleScanInterval
}

// adoptByHand makes a service someone started by hand Up: from RetryOver
// (or a pause between attempts, or start_on_load no's wait) it is watched
// again, its attempts reset as by padmin start.
func (s *Service) adoptByHand(found []proc.Match, from State) {
	s.mu.Lock()
	s.nextAt, s.rearming, s.lastSeen = 0, false, nil
	if from == RetryOver {
		s.attempts, s.streak = nil, 0
	}
	s.mu.Unlock()
	s.d.Slog.Info("the service's processes appeared without pcheck starting them (a start by hand): adopted",
		"service", s.cfg.Name, "from", from.String(), "pids", pidsOf(found))
	s.watch(found, false, upLines(s.cfg.Name, found)...)
	s.forget()
}

// upLines are the catalogue's Up lines of found.
func upLines(name string, found []proc.Match) []msg.Message {
	lines := make([]msg.Message, len(found))
	for i, m := range found {
		lines[i] = msg.Up(name, m.ID.PID)
	}
	return lines
}
