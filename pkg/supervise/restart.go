// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
)

// Reasons of a restart pcheck is asked for (RestartRequest.Reason).
const (
	// ReasonOperator: padmin restart.
	ReasonOperator = "operator"
	// ReasonLimit: the service broke a resource limit.
	ReasonLimit = "limit"
)

// RestartRequest asks an Up service to be restarted through the usual recovery path.
type RestartRequest struct {
	Reason string        // "operator" or "limit": the restart reason (Try to restart, PWATCH_CAUSE, metrics)
	Env    []string      // extra KEY=VALUE for the scripts (e.g. PWATCH_LIMIT=memory_max, PWATCH_LIMIT_VALUE=...)
	Grace  time.Duration // SIGTERM to the tree first, SIGKILL after Grace; 0 = SIGKILL at once (as a stall kill)
	Log    *msg.Message  // logged when the request is taken (the over-limit line, or msg.CommandExecute); nil = nothing
}

// Restart restarts an Up service as after a death: its whole tree is
// killed (SIGTERM, SIGKILL after r.Grace), the death is logged with its
// ending, and the restart script runs with PWATCH_REASON and PWATCH_CAUSE
// r.Reason and r.Env. It is not a failed attempt: it uses up none of
// retry_count, except a limit broken again within stable_uptime of a
// restart by pcheck, which counts as one. It answers once the service's
// loop has taken the request (the kill and the restart follow), and
// refuses, naming the state, a service that is not Up.
func (s *Service) Restart(ctx context.Context, r RestartRequest) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restart not accepted: %w", err)
	}
	if err := r.check(); err != nil {
		return err
	}
	if err := s.restartRefusal(); err != nil { // at once: no wait behind a recovery
		return err
	}
	return s.ask(ctx, input{kind: inRestart, restart: &r})
}

var envName = regexp.MustCompile(`^PWATCH_[A-Z0-9_]+$`)

// pcheckEnv are the variables pcheck sets itself: a request may not
// change them.
var pcheckEnv = []string{
	"PWATCH_SERVICE", "PWATCH_REASON", "PWATCH_PID", "PWATCH_ATTEMPT", "PWATCH_ATTEMPTS_LEFT", "PWATCH_ACTION",
	"PWATCH_CAUSE", "PWATCH_EXIT_STATUS", "PWATCH_SIGNAL", "PWATCH_SENDER_PID", "PWATCH_SENDER_COMM",
}

// check refuses a request that names no known reason, or whose Env is not
// PWATCH_NAME=value lines of its own.
func (r RestartRequest) check() error {
	if r.Reason != ReasonOperator && r.Reason != ReasonLimit {
		return fmt.Errorf("restart not accepted: reason %q is neither %q nor %q", r.Reason, ReasonOperator, ReasonLimit)
	}
	if r.Grace < 0 {
		return fmt.Errorf("restart not accepted: negative grace %v", r.Grace)
	}
	for _, kv := range r.Env {
		name, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok || !envName.MatchString(name):
			return fmt.Errorf("restart not accepted: environment entry %q is not PWATCH_NAME=value", kv)
		case slices.Contains(pcheckEnv, name):
			return fmt.Errorf("restart not accepted: environment entry %s is pcheck's own", name)
		case strings.ContainsAny(value, "\x00\n"):
			return fmt.Errorf("restart not accepted: the value of %s holds a NUL or a newline", name)
		}
	}
	return nil
}

// restartRefusal says why the service cannot be restarted now; nil when
// it is Up.
func (s *Service) restartRefusal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.paused || s.state == Paused:
		return fmt.Errorf("not restarted: the service is paused; padmin start it")
	case s.state == Up:
		return nil
	case s.state == RetryOver:
		return fmt.Errorf("not restarted: the service is RetryOver (its retries are over); padmin start it")
	case s.state == Stalled:
		return fmt.Errorf("not restarted: the service is Stalled (pcheck is killing its tree to restart it)")
	case s.state == Down && s.rec == nil && s.step == stepRest:
		return fmt.Errorf("not restarted: the service is Down and not being recovered (waiting for its processes to appear)")
	}
	return fmt.Errorf("not restarted: the service is %v, in a recovery already", s.state)
}

// killForRestart takes a restart request at rest: it answers it, logs it
// and kills the service's trees (a job: stepRestartKill), as a stall check
// does; the deaths come back as exit events and are recovered with the
// request's reason.
func (s *Service) killForRestart(ctx context.Context, in input) {
	r := in.restart
	if err := s.restartRefusal(); err != nil {
		in.done <- err
		return
	}
	s.mu.Lock()
	top := slices.Clone(s.top)
	s.moveLocked(Stalled)
	s.stallReason, s.requested = r.Reason, r
	s.mu.Unlock()
	in.done <- nil
	if r.Log != nil {
		s.log(*r.Log)
	}
	o := proc.KillOptions{Signal: syscall.SIGKILL}
	if r.Grace > 0 {
		o = proc.KillOptions{Signal: syscall.SIGTERM, Timeout: r.Grace}
	}
	ids := s.treeIDs(top)
	s.startJob(context.WithoutCancel(ctx), stepRestartKill, r.Grace+proc.DefaultKillWait, func(ctx context.Context) jobResult {
		left, err := s.d.Processes.Kill(ctx, ids, o)
		failed := slices.ContainsFunc(top, func(m proc.Match) bool { return slices.Contains(left, m.ID) })
		return jobResult{failed: failed, left: left, err: err}
	})
}

// restartKilled: the kill is over; one that failed leaves the service Up,
// still watched.
func (s *Service) restartKilled(_ context.Context, res jobResult) {
	s.rest()
	if !res.failed {
		return
	}
	s.d.Slog.Error("restart: the service's processes outlived SIGKILL; it stays Up, watched",
		"service", s.cfg.Name, "pids", idPIDs(res.left), "error", res.err)
	s.mu.Lock()
	s.stallReason, s.requested = "", nil
	s.moveLocked(Up)
	s.mu.Unlock()
}

// requestEnv tells a script why pcheck killed the service, if a request
// did: PWATCH_CAUSE is its reason, and its own variables follow.
func requestEnv(env []string, r *RestartRequest) []string {
	if r == nil {
		return env
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "PWATCH_CAUSE=") })
	env = append(env, "PWATCH_CAUSE="+r.Reason)
	return append(env, r.Env...)
}
