// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/reboot"
)

// The recovery: what happens from a death to Up again, or to the
// retry-over action, as steps of the Run loop (machine.go): killing the
// leftovers, the pause, the restart script, the await of the new
// processes, the settling of a failed attempt, the retry-over script.

// recovery is the recovery under way: its reason, its time (cancelled by
// padmin stop and pcheck's end, ended by recovery_timeout) and the attempt
// it is making.
type recovery struct {
	ctx    context.Context
	cancel context.CancelFunc
	ended  bool // the loop has seen ctx end
	reason string
	pid    int
	// first: the next attempt uses up none of retry_count; again: an
	// attempt failed already.
	first, again bool
	// The attempt under way: its restart_timeout, its script, and what
	// its looks last found.
	actx    context.Context
	acancel context.CancelFunc
	script  proc.ID
	found   []proc.Match
	lookErr error
	ticks   int
}

func (r *recovery) cancelAttempt() {
	if r.acancel != nil {
		r.acancel()
	}
}

// dying is the death whose leftovers are being killed: the recovery to
// start once they are.
type dying struct {
	reason string
	pid    int
	first  bool
}

// killLeftovers kills what is left of a dead top-level process's tree,
// then waits, bounded, until the dead process's files are closed, so that
// the new server can bind its port (a job: stepLeftovers).
//
// What is left: the descendants remembered from the last scan (by identity,
// so a reused pid is never hit), and, where the backend keeps trees, every
// process its fork events put in the dead one's tree (workers forked since
// the last scan, CGI children): no /proc scan. Elsewhere (pidfd, proc),
// every process now matching the service that is not one of its other
// watched top-level processes and started after the dead one: the workers
// a master started since the last scan (nginx and apache replace a worker
// that dies), orphaned now, would hold the port against the restart.
func (s *Service) killLeftovers(ctx context.Context, dead proc.ID) {
	s.mu.Lock()
	var leftovers []proc.ID
	others := map[proc.ID]bool{}
	s.survivors = nil
	for _, m := range s.top {
		if m.ID == dead {
			for _, d := range m.Descendants {
				leftovers = append(leftovers, d.ID)
			}
		} else {
			others[m.ID] = true
			s.survivors = append(s.survivors, m.ID)
		}
	}
	s.mu.Unlock()
	s.unwatchAll()
	if tree, ok := s.d.Watcher.Tree(dead); ok {
		for _, p := range tree {
			if !others[p.ID] {
				leftovers = append(leftovers, p.ID)
			}
		}
	} else if found, err := s.d.Processes.Find(); err == nil {
		for _, m := range found {
			if !others[m.ID] && m.ID.StartTime >= dead.StartTime {
				leftovers = append(leftovers, m.IDs()...)
			}
		}
	}
	bound := 2*s.cfg.KillTimeout + proc.DefaultKillWait + s.d.ExitWait
	s.startJob(ctx, stepLeftovers, bound, func(ctx context.Context) jobResult {
		s.kill(ctx, leftovers)
		wctx, cancel := context.WithTimeout(ctx, s.d.ExitWait)
		defer cancel()
		_ = s.d.Processes.WaitExited(wctx, dead)
		return jobResult{}
	})
}

// leftoversKilled: the recovery of the death begins.
func (s *Service) leftoversKilled(ctx context.Context, _ jobResult) {
	d := s.dying
	s.dying = dying{}
	s.startRecovery(ctx, d.reason, d.pid, d.first)
}

// startRecovery begins restart attempts until the service is Up, its
// retries are over, or it is stopped. first is an attempt that uses up
// none of retry_count: pcheck's first start of the service, or a restart
// pcheck was asked for (Restart). Each attempt waits out the pause the
// policy set (policy.go). With recovery_timeout, a service not back in
// time reboots the node, retries left or not.
func (s *Service) startRecovery(ctx context.Context, reason string, oldPID int, first bool) {
	if s.stopping {
		s.rest()
		return
	}
	s.mu.Lock()
	s.recReason, s.recPID = reason, oldPID // for a reload's supervisor
	s.mu.Unlock()
	if ctx.Err() != nil {
		s.rest()
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	if s.cfg.RecoveryTimeout > 0 {
		var cancelTimeout context.CancelFunc
		rctx, cancelTimeout = context.WithTimeoutCause(rctx, s.cfg.RecoveryTimeout, errRecoveryTimeout)
		outer := cancel
		cancel = func() { cancelTimeout(); outer() }
	}
	s.mu.Lock()
	s.rec = &recovery{ctx: rctx, cancel: cancel, reason: reason, pid: oldPID, first: first}
	s.mu.Unlock()
	s.nextAttempt(ctx)
}

// nextAttempt waits out the pause the policy set (stepPausing), then makes
// the attempt.
func (s *Service) nextAttempt(ctx context.Context) {
	s.mu.Lock()
	wait := s.nextAt - s.d.Clock.Now()
	s.mu.Unlock()
	if wait <= 0 {
		s.attempt(ctx)
		return
	}
	s.setStep(stepPausing, wait)
	s.setTimer(s.after(wait))
	s.setTicker(s.d.IdleScanInterval)
}

// pauseOver: the pause is over.
func (s *Service) pauseOver(ctx context.Context) { s.attempt(ctx) }

// pauseLook looks, during a pause, for a service started by hand: it is
// adopted once its processes stay.
func (s *Service) pauseLook(_ context.Context, how lookFor) {
	if how == lookTick {
		how = lookIdle
	}
	if found, _, err := s.look(how); err == nil && s.settled(found) {
		s.adoptByHand(found, Down)
		s.finishRecovery()
	}
}

// attempt makes a restart attempt: the restart script runs (stepScript),
// within restart_timeout with the await of its processes.
func (s *Service) attempt(ctx context.Context) {
	r := s.rec
	if r.ctx.Err() != nil {
		s.endRecovery(ctx)
		return
	}
	// After a failed attempt, the service may have come up all the same
	// (late, or by hand): a new attempt would start a second copy.
	if r.again {
		if found, err := s.d.Processes.Find(); err == nil && len(found) >= s.cfg.MinCount {
			s.adoptByHand(found, Down)
			s.finishRecovery()
			return
		}
	}
	attempt, left, ok := s.takeAttempt(r.first)
	if !ok {
		s.retryOver(ctx)
		return
	}
	s.setState(Restarting)
	if r.first && r.reason == ReasonStart {
		s.d.Slog.Info("first start of the service by pcheck: not a restart, retry_count is left whole",
			"service", s.cfg.Name, "retry_count", s.cfg.RetryCount)
	}
	r.first = false
	s.log(msg.TryRestart(s.cfg.Name, r.reason, attempt))
	s.d.Observer.Restart(s.cfg.Name, r.reason)
	env := []string{
		"PWATCH_SERVICE=" + s.cfg.Name,
		"PWATCH_REASON=" + r.reason,
		"PWATCH_PID=" + strconv.Itoa(r.pid),
		"PWATCH_ATTEMPT=" + strconv.Itoa(attempt),
		"PWATCH_ATTEMPTS_LEFT=" + strconv.Itoa(left),
	}
	if r.pid != 0 {
		env = append(env, s.deathEnv()...)
	}
	r.actx, r.acancel = context.WithTimeout(r.ctx, s.cfg.RestartTimeout)
	r.script, r.found, r.lookErr, r.ticks = proc.ID{}, nil, nil, 0
	s.startJob(r.actx, stepScript, s.cfg.RestartTimeout, s.scriptJob(env))
}

// scriptJob runs the restart script (killed, with its process group, when
// restart_timeout passes or the recovery ends).
func (s *Service) scriptJob(env []string) func(context.Context) jobResult {
	return func(ctx context.Context) jobResult {
		var script proc.ID
		started := func(pid int) {
			script = s.followScript(pid)
			s.followedScript(script)
			// Recorded while it runs: a pcheck started meanwhile waits for it.
			s.scriptStarted(pid)
		}
		err := s.runScript(ctx, s.cfg.RestartScript, env, s.scriptLogger("restart_script"), started)
		s.scriptEnded()
		if err != nil {
			err = fmt.Errorf("restart script: %w", err)
		}
		return jobResult{err: err, script: script}
	}
}

// scriptExited: the script has returned; its processes are awaited
// (stepAwaiting) for what is left of restart_timeout.
func (s *Service) scriptExited(ctx context.Context, res jobResult) {
	r := s.rec
	r.script = res.script
	if res.err != nil {
		s.attemptFailed(ctx, res.err)
		return
	}
	dl, _ := r.actx.Deadline()
	s.setStep(stepAwaiting, s.cfg.RestartTimeout)
	s.setTimer(time.After(time.Until(dl)))
	s.setTicker(s.d.ScanInterval)
	s.awaitLook(ctx, lookNow) // the script has just run
}

// awaitLook looks for min_count top-level processes, after every exec of
// the service's executable and every ScanInterval. Where the backend
// keeps trees each look reads /proc only for the processes events named;
// after lost events, and every IdleScanInterval (a process that changed
// its argv after its exec, a start events did not name), it scans, in a
// read shared with every other service.
func (s *Service) awaitLook(ctx context.Context, how lookFor) {
	r := s.rec
	if how == lookTick {
		r.ticks++
		if scanEvery := max(int(s.d.IdleScanInterval/s.d.ScanInterval), 1); r.ticks%scanEvery == 0 {
			how = lookIdleFull
		} else {
			how = lookPeriodic
		}
	}
	s.grantScriptTree()
	r.found, _, r.lookErr = s.look(how)
	if r.lookErr == nil && len(r.found) >= s.cfg.MinCount {
		s.attemptEnded(ctx, r.found, nil)
	}
}

// awaitOver: restart_timeout passed (or the recovery ended) before the
// processes came.
func (s *Service) awaitOver(ctx context.Context) {
	r := s.rec
	err := fmt.Errorf("%d of %d processes running after %s", len(r.found), s.cfg.MinCount, s.cfg.RestartTimeout)
	if r.lookErr != nil {
		err = fmt.Errorf("looking for its processes: %w", r.lookErr)
	}
	s.attemptFailed(ctx, err)
}

// attemptFailed ends a failed attempt (the script failed or restart_timeout
// passed) without leaving a copy behind (stepSettling, settleFailed); a
// recovery whose time has ended skips that.
func (s *Service) attemptFailed(ctx context.Context, failure error) {
	r := s.rec
	r.cancelAttempt()
	if r.ctx.Err() != nil {
		s.attemptEnded(ctx, nil, failure)
		return
	}
	script := r.script
	s.startJob(r.ctx, stepSettling, s.cfg.KillTimeout+proc.DefaultKillWait, func(ctx context.Context) jobResult {
		found, err := s.settleFailed(ctx, script, failure)
		return jobResult{found: found, err: err}
	})
}

// settleDone: a failed attempt is settled; it may have found the service
// after all.
func (s *Service) settleDone(ctx context.Context, res jobResult) {
	s.attemptEnded(ctx, res.found, res.err)
}

// attemptEnded ends the attempt: found Up, or failed (err) and the next
// attempt follows.
func (s *Service) attemptEnded(ctx context.Context, found []proc.Match, err error) {
	r := s.rec
	r.cancelAttempt()
	s.scriptDone(found)
	if r.ctx.Err() != nil {
		s.endRecovery(ctx)
		return
	}
	if err == nil {
		s.watch(found, true, upLines(s.cfg.Name, found)...)
		s.finishRecovery()
		return
	}
	s.log(msg.SetPidFail(s.cfg.Name, err))
	s.mu.Lock()
	s.moveLocked(Down)
	s.failedLocked()
	s.mu.Unlock()
	r.again = true
	s.nextAttempt(ctx)
}

// endRecovery ends a recovery cut short: by padmin stop or pcheck's end
// (nothing to do), or by recovery_timeout (reboot).
func (s *Service) endRecovery(ctx context.Context) {
	rctx := s.rec.ctx
	s.finishRecovery()
	if ctx.Err() != nil || !errors.Is(context.Cause(rctx), errRecoveryTimeout) {
		return
	}
	s.log(msg.RecoveryTimeout(s.cfg.Name, s.cfg.RecoveryTimeout))
	s.setState(RetryOver)
	if !s.reboot(ctx) {
		s.afterRetryOver(false)
	}
}

// finishRecovery lets go of the recovery, if any: the loop is at rest.
func (s *Service) finishRecovery() {
	if r := s.rec; r != nil {
		r.cancelAttempt()
		r.cancel()
		s.mu.Lock()
		s.rec = nil
		s.mu.Unlock()
	}
	s.rest()
}

// retryOver takes the retry-over action, after retry_over_script
// (stepRetryOverScript), which runs to its restart_timeout even when the
// service is stopped meanwhile.
func (s *Service) retryOver(ctx context.Context) {
	s.unwatchAll()
	s.mu.Lock()
	s.recReason, s.nextAt = "", 0
	s.mu.Unlock()
	s.d.Observer.RetryOver(s.cfg.Name)
	action := s.cfg.RetryOverAction
	s.log(msg.RetryOver(s.cfg.Name, action.String()))
	if len(s.cfg.RetryOverScript) == 0 {
		s.retryOverAction(ctx)
		return
	}
	env := append([]string{"PWATCH_SERVICE=" + s.cfg.Name, "PWATCH_ACTION=" + action.String()}, s.deathEnv()...)
	s.startJob(ctx, stepRetryOverScript, s.cfg.RestartTimeout, func(ctx context.Context) jobResult {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.RestartTimeout)
		defer cancel()
		return jobResult{err: s.runScript(sctx, s.cfg.RetryOverScript, env, s.scriptLogger("retry_over_script"), nil)}
	})
}

// retryOverScriptExited: the action follows the script.
func (s *Service) retryOverScriptExited(ctx context.Context, res jobResult) {
	if res.err != nil {
		s.d.Slog.Warn("retry_over_script failed", "service", s.cfg.Name, "error", res.err)
	}
	s.retryOverAction(ctx)
}

// retryOverAction leaves the service RetryOver and acts: shutdown, exit,
// reboot or continue. The recovery, if any, is over.
func (s *Service) retryOverAction(ctx context.Context) {
	s.setState(RetryOver)
	switch s.cfg.RetryOverAction {
	case pfile.ActionShutdown:
		s.d.Exit(0)
	case pfile.ActionExit:
		s.d.Exit(3)
	case pfile.ActionReboot:
		if !s.reboot(ctx) {
			s.afterRetryOver(false)
		}
	default:
		s.afterRetryOver(true)
	}
	s.finishRecovery()
}

func (s *Service) killTrees(ctx context.Context, ms []proc.Match) []proc.ID {
	return s.kill(ctx, s.treeIDs(ms))
}

// treeIDs are the identities of ms, their scanned descendants and, where
// the backend keeps trees, what is in their trees now.
func (s *Service) treeIDs(ms []proc.Match) []proc.ID {
	var ids []proc.ID
	for _, m := range ms {
		ids = append(ids, m.IDs()...)
		if tree, ok := s.d.Watcher.Tree(m.ID); ok {
			for _, p := range tree {
				ids = append(ids, p.ID)
			}
		}
	}
	return ids
}

// kill ends ids: SIGTERM, SIGKILL after kill_timeout. It returns those it
// could not kill.
func (s *Service) kill(ctx context.Context, ids []proc.ID) []proc.ID {
	slices.SortFunc(ids, func(a, b proc.ID) int { return a.PID - b.PID })
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil
	}
	left, err := s.d.Processes.Kill(ctx, ids, proc.KillOptions{Timeout: s.cfg.KillTimeout})
	if err != nil {
		s.d.Slog.Warn("kill failed", "service", s.cfg.Name, "error", err)
	}
	return left
}

// deathEnv tells a script why the service last died (causeEnv), and, when
// a restart request killed it, the request's reason and variables.
func (s *Service) deathEnv() []string {
	s.mu.Lock()
	e, req := s.lastDeath, s.lastDeathFor
	s.mu.Unlock()
	return requestEnv(causeEnv(e), req)
}

// errRecoveryTimeout ends a recovery that took longer than
// recovery_timeout.
var errRecoveryTimeout = errors.New("recovery_timeout passed")

// reboot asks the reboot guard to reboot the node and says whether it is
// rebooting; past its threshold, or when it cannot, the service is left as
// with continue.
func (s *Service) reboot(ctx context.Context) bool {
	if s.d.Reboot == nil {
		s.d.Slog.Error("automatic reboot is not available: acting as continue", "service", s.cfg.Name)
		return false
	}
	err := s.d.Reboot(ctx, s.cfg.Name)
	switch {
	case errors.Is(err, reboot.ErrThresholdReached):
		s.log(msg.RebootThresholdReached(s.cfg.Name))
	case err != nil:
		s.d.Slog.Error("no reboot: acting as continue", "service", s.cfg.Name, "error", err)
	}
	return err == nil
}

// takeAttempt counts a restart attempt within grace and says how many are
// left after it, or says the retries are over. pcheck's first start of
// the service is attempt 0 and counts nothing.
func (s *Service) takeAttempt(first bool) (attempt, left int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.d.Clock.Now()
	s.attempts = s.recentAttempts(now)
	if first {
		return 0, max(s.cfg.RetryCount-len(s.attempts), 0), true
	}
	if len(s.attempts) >= s.cfg.RetryCount {
		return 0, 0, false
	}
	s.attempts = append(s.attempts, now)
	return len(s.attempts), s.cfg.RetryCount - len(s.attempts), true
}

// recentAttempts are the attempts made within grace of now. s.mu is held.
func (s *Service) recentAttempts(now time.Duration) []time.Duration {
	i := 0
	for i < len(s.attempts) && now-s.attempts[i] >= s.cfg.Grace {
		i++
	}
	return s.attempts[i:]
}

// followScript is the restart script's identity, read while it is still
// unreaped (so its pid is its own); where the backend keeps trees, what
// it forks from now on is kept as its tree. A script that forks before
// this is done (microseconds after its exec) leaves that child out of its
// tree, but not out of its process group.
func (s *Service) followScript(pid int) proc.ID {
	p, err := s.d.Processes.Read(pid)
	if err != nil {
		s.d.Slog.Warn("cannot read the restart script's identity: what it starts cannot be told apart if the attempt fails",
			"service", s.cfg.Name, "pid", pid, "error", err)
		return proc.ID{}
	}
	s.d.Watcher.Follow(p.ID, p.PPID)
	return p.ID
}

// settleFailed ends a failed attempt (the script failed or restart_timeout
// passed) without leaving a copy behind. It looks once more for the
// service: processes that came up late but match are adopted (the attempt
// succeeded after all). Otherwise what the script started is killed: its
// tree from fork events where the backend keeps them, its process group
// and session, and any process of the service that is not min_count
// strong. ctx is the recovery's: the attempt's own has ended.
func (s *Service) settleFailed(ctx context.Context, script proc.ID, failure error) ([]proc.Match, error) {
	if ctx.Err() != nil {
		return nil, failure // stopped, or the recovery's time is up
	}
	s.grantScriptTree()
	found, err := s.d.Processes.Find()
	if err == nil && len(found) >= s.cfg.MinCount {
		s.d.Slog.Info("the service came up once its attempt had failed: adopted",
			"service", s.cfg.Name, "failure", failure.Error(), "pids", pidsOf(found))
		return found, nil
	}
	ids := s.treeIDs(found)
	if script.PID != 0 {
		if tree, ok := s.d.Watcher.Tree(script); ok {
			for _, p := range tree {
				ids = append(ids, p.ID)
			}
		}
		group, err := s.d.Processes.Group(script)
		if err != nil {
			s.d.Slog.Warn("cannot list the restart script's process group", "service", s.cfg.Name, "error", err)
		}
		ids = append(ids, group...)
	}
	if len(ids) > 0 {
		s.d.Slog.Info("killing what the failed attempt started, so that the next one makes no second copy",
			"service", s.cfg.Name, "processes", len(ids))
		s.kill(ctx, ids)
	}
	return nil, failure
}
