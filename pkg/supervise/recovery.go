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

// The recovery flow: what happens from a death to Up again, or to the
// retry-over action.

// afterDeath kills what is left of a dead top-level process's tree, then
// waits, bounded, until the dead process's files are closed, so that the
// new server can bind its port.
//
// What is left: the descendants remembered from the last scan (by identity,
// so a reused pid is never hit), and, where the backend keeps trees, every
// process its fork events put in the dead one's tree (workers forked since
// the last scan, CGI children): no /proc scan. Elsewhere (pidfd, proc),
// every process now matching the service that is not one of its other
// watched top-level processes and started after the dead one: the workers
// a master started since the last scan (nginx and apache replace a worker
// that dies), orphaned now, would hold the port against the restart.
func (s *Service) afterDeath(ctx context.Context, dead proc.ID) {
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
	s.kill(ctx, leftovers)
	wctx, cancel := context.WithTimeout(ctx, s.d.ExitWait)
	defer cancel()
	_ = s.d.Processes.WaitExited(wctx, dead)
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

// recover runs restart attempts until the service is Up, its retries are
// over, or it is stopped. first is an attempt that uses up none of
// retry_count: pcheck's first start of the service, or a restart pcheck
// was asked for (Restart). Each attempt waits out the pause
// the policy set (policy.go). With recovery_timeout, a service not back in
// time reboots the node, retries left or not.
func (s *Service) recover(ctx context.Context, reason string, oldPID int, first bool) {
	rctx, cancel := context.WithCancel(ctx)
	if s.cfg.RecoveryTimeout > 0 {
		var cancelTimeout context.CancelFunc
		rctx, cancelTimeout = context.WithTimeoutCause(rctx, s.cfg.RecoveryTimeout, errRecoveryTimeout)
		defer cancelTimeout()
	}
	s.mu.Lock()
	if s.paused {
		s.mu.Unlock()
		cancel()
		return
	}
	s.cancel = cancel
	s.recReason, s.recPID = reason, oldPID
	s.mu.Unlock()
	defer func() {
		cancel()
		s.mu.Lock()
		s.cancel = nil
		s.mu.Unlock()
	}()

	for again := false; ; again = true {
		s.progress()
		if found := s.waitPause(rctx); found != nil {
			s.adoptByHand(found, Down)
			return
		}
		if rctx.Err() != nil {
			s.recoveryEnded(ctx, rctx)
			return
		}
		// After a failed attempt, the service may have come up all the
		// same (late, or by hand): a new attempt would start a second copy.
		if again {
			if found, err := s.d.Processes.Find(); err == nil && len(found) >= s.cfg.MinCount {
				s.adoptByHand(found, Down)
				return
			}
		}
		attempt, left, ok := s.takeAttempt(first)
		if !ok {
			s.retryOver(ctx)
			return
		}
		s.setState(Restarting)
		if first && reason == ReasonStart {
			s.d.Slog.Info("first start of the service by pcheck: not a restart, retry_count is left whole",
				"service", s.cfg.Name, "retry_count", s.cfg.RetryCount)
		}
		first = false
		s.log(msg.TryRestart(s.cfg.Name, reason, attempt))
		s.d.Observer.Restart(s.cfg.Name, reason)
		found, err := s.restartOnce(rctx, reason, oldPID, attempt, left)
		s.scriptDone(found)
		if rctx.Err() != nil {
			s.recoveryEnded(ctx, rctx)
			return
		}
		if err == nil {
			s.watch(found)
			s.mu.Lock()
			s.fromRestart = true
			s.mu.Unlock()
			for _, m := range found {
				s.log(msg.Up(s.cfg.Name, m.ID.PID))
			}
			return
		}
		s.log(msg.SetPidFail(s.cfg.Name, err))
		s.mu.Lock()
		s.moveLocked(Down)
		s.failedLocked()
		s.mu.Unlock()
	}
}

// recoveryEnded handles a recovery cut short: by padmin stop or pcheck's
// end (nothing to do), or by recovery_timeout (reboot).
func (s *Service) recoveryEnded(ctx, rctx context.Context) {
	if ctx.Err() != nil || !errors.Is(context.Cause(rctx), errRecoveryTimeout) {
		return
	}
	s.log(msg.RecoveryTimeout(s.cfg.Name, s.cfg.RecoveryTimeout))
	s.setState(RetryOver)
	if !s.reboot(ctx) {
		s.afterRetryOver(false)
	}
}

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

// restartOnce runs the restart script and waits for min_count top-level
// processes, all within restart_timeout. An attempt that fails leaves
// nothing of its own running (settleFailed): the next one must not make a
// second copy.
func (s *Service) restartOnce(ctx context.Context, reason string, oldPID, attempt, left int) ([]proc.Match, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.RestartTimeout)
	defer cancel()
	env := []string{
		"PWATCH_SERVICE=" + s.cfg.Name,
		"PWATCH_REASON=" + reason,
		"PWATCH_PID=" + strconv.Itoa(oldPID),
		"PWATCH_ATTEMPT=" + strconv.Itoa(attempt),
		"PWATCH_ATTEMPTS_LEFT=" + strconv.Itoa(left),
	}
	if oldPID != 0 {
		env = append(env, s.deathEnv()...)
	}
	var script proc.ID
	started := func(pid int) {
		script = s.followScript(pid)
		s.followedScript(script)
		// Recorded while it runs: a pcheck started meanwhile waits for it.
		s.scriptStarted(pid)
	}
	err := s.runScript(actx, s.cfg.RestartScript, env, s.scriptLogger("restart_script"), started)
	s.scriptEnded()
	if err != nil {
		err = fmt.Errorf("restart script: %w", err)
	} else {
		var found []proc.Match
		if found, err = s.awaitProcesses(actx); err == nil {
			return found, nil
		}
	}
	return s.settleFailed(ctx, script, err)
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

// awaitProcesses looks for min_count top-level processes after every exec of
// the service's executable and every ScanInterval, until ctx ends. Where the
// backend keeps trees each look reads /proc only for the processes events
// named; after lost events, and every IdleScanInterval (a process that
// changed its argv after its exec, a start events did not name), it scans,
// in a read shared with every other service.
func (s *Service) awaitProcesses(ctx context.Context) ([]proc.Match, error) {
	tick := time.NewTicker(s.d.ScanInterval)
	defer tick.Stop()
	scanEvery := max(int(s.d.IdleScanInterval/s.d.ScanInterval), 1)
	how := lookNow // the script has just run
	for ticks := 0; ; {
		s.progress()
		s.grantScriptTree()
		found, _, err := s.look(how)
		if err == nil && len(found) >= s.cfg.MinCount {
			return found, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nil, fmt.Errorf("looking for its processes: %w", err)
			}
			return nil, fmt.Errorf("%d of %d processes running after %s", len(found), s.cfg.MinCount, s.cfg.RestartTimeout)
		case <-s.appeared:
			how = lookNow
		case <-s.resync:
			how = lookFull
		case <-tick.C:
			if ticks++; ticks%scanEvery == 0 {
				how = lookIdleFull
			} else {
				how = lookPeriodic
			}
		}
	}
}

func (s *Service) retryOver(ctx context.Context) {
	s.unwatchAll()
	s.mu.Lock()
	s.recReason, s.nextAt = "", 0
	s.mu.Unlock()
	s.d.Observer.RetryOver(s.cfg.Name)
	action := s.cfg.RetryOverAction
	s.log(msg.RetryOver(s.cfg.Name, action.String()))
	if len(s.cfg.RetryOverScript) > 0 {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.RestartTimeout)
		env := append([]string{"PWATCH_SERVICE=" + s.cfg.Name, "PWATCH_ACTION=" + action.String()}, s.deathEnv()...)
		err := s.runScript(sctx, s.cfg.RetryOverScript, env, s.scriptLogger("retry_over_script"), nil)
		cancel()
		if err != nil {
			s.d.Slog.Warn("retry_over_script failed", "service", s.cfg.Name, "error", err)
		}
	}
	s.setState(RetryOver)
	switch action {
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
}
