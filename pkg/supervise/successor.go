// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"slices"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/runstate"
)

// What a pcheck that starts learns from the one before it (pkg/runstate):
// a restart it left running, and the trees it watched.

// RunState keeps, across pcheck restarts within one boot, the restart
// script running for a service and the trees watched for it
// (runstate.Store).
type RunState interface {
	ScriptStarted(service string, pid int) error
	ScriptEnded(service string) error
	Script(service string) (proc.ID, bool, error)
	Watched(service string, trees []runstate.Tree) error
	Trees(service string) ([]runstate.Tree, error)
}

// scriptStarted records the restart script that now runs as pid.
func (s *Service) scriptStarted(pid int) {
	if s.d.RunState == nil {
		return
	}
	if err := s.d.RunState.ScriptStarted(s.cfg.Name, pid); err != nil {
		s.d.Slog.Warn("restart script not recorded: a pcheck restarted while it runs would not wait for it", "service", s.cfg.Name, "error", err)
	}
}

func (s *Service) scriptEnded() {
	if s.d.RunState == nil {
		return
	}
	if err := s.d.RunState.ScriptEnded(s.cfg.Name); err != nil {
		s.d.Slog.Warn("restart script record not cleared", "service", s.cfg.Name, "error", err)
	}
}

// recordTrees records the trees watched now, for a successor.
func (s *Service) recordTrees(found []proc.Match) {
	if s.d.RunState == nil {
		return
	}
	trees := make([]runstate.Tree, 0, len(found))
	for _, m := range found {
		t := runstate.Tree{Master: m.ID, ScriptOwned: s.scriptGave(m.ID)}
		for _, d := range m.Descendants {
			t.Members = append(t.Members, d.ID)
		}
		trees = append(trees, t)
	}
	if err := s.d.RunState.Watched(s.cfg.Name, trees); err != nil {
		s.d.Slog.Warn("watched trees not recorded", "service", s.cfg.Name, "error", err)
	}
}

// awaitRestartInFlight waits for a restart script an earlier pcheck left
// running (it was killed while the script ran: the unit's KillMode=process
// leaves scripts alive), bounded by restart_timeout, and then gives the
// service it starts the same restart_timeout to appear. Starting another
// copy meanwhile would leave two instances running. A script still running
// at the bound is killed, as its own pcheck would have. waited: there was
// one to wait for.
func (s *Service) awaitRestartInFlight(ctx context.Context) (waited bool) {
	if s.d.RunState == nil {
		return false
	}
	id, ok, err := s.d.RunState.Script(s.cfg.Name)
	if err != nil {
		s.d.Slog.Error("cannot read the restart script record; not waiting for it", "service", s.cfg.Name, "error", err)
		return false
	}
	if !ok {
		return false
	}
	if alive, err := s.d.Processes.Alive(id); err != nil || !alive {
		s.scriptEnded()
		return false
	}
	s.d.Slog.Warn("a restart script of the previous pcheck is still running: waiting for it", "service", s.cfg.Name,
		"pid", id.PID, "restart_timeout", s.cfg.RestartTimeout)
	waited = true
	wctx, cancel := context.WithTimeout(ctx, s.cfg.RestartTimeout)
	defer cancel()
	_ = s.d.Processes.WaitExited(wctx, id)
	if ctx.Err() != nil {
		return // pcheck ends: the record stays for the next one
	}
	defer s.scriptEnded()
	if alive, _ := s.d.Processes.Alive(id); alive {
		s.d.Slog.Warn("the previous pcheck's restart script ran out of time: killing it", "service", s.cfg.Name, "pid", id.PID)
		_, _ = s.d.Processes.Kill(ctx, []proc.ID{id}, proc.KillOptions{Signal: syscall.SIGKILL})
		return
	}
	// The script has returned: its service may take a moment to show.
	s.keepGroupOf(id)
	for wctx.Err() == nil {
		if found, err := s.d.Processes.Find(); err == nil && len(found) >= s.cfg.MinCount {
			return
		}
		select {
		case <-wctx.Done():
		case <-time.After(s.d.ScanInterval):
		}
	}
	return waited
}

// dropOrphans kills, and leaves out of found, the processes that are what
// is left of a master the previous pcheck watched and that died while no
// pcheck ran: its workers, now children of init, match with no matching
// ancestor and would be taken for the service. A process is such an orphan
// when a recorded master is gone and the process was recorded below it, or
// (workers forked since the record) its process group and its session are
// both the master's: a daemon that made itself a session leader (setsid).
// Only a pid in a session or group ever gets those ids, and the kernel
// does not hand out a pid still in use as either; a restart script's
// service, in the script's group but pcheck's session, is never taken for
// one. The service is then restarted whole.
func (s *Service) dropOrphans(ctx context.Context, found []proc.Match) []proc.Match {
	if s.d.RunState == nil || len(found) == 0 {
		return found
	}
	trees, err := s.d.RunState.Trees(s.cfg.Name)
	if err != nil {
		s.d.Slog.Error("cannot read the watched trees record; orphans of a dead master cannot be told apart", "service", s.cfg.Name, "error", err)
		return found
	}
	var dead []runstate.Tree
	for _, t := range trees {
		if alive, err := s.d.Processes.Alive(t.Master); err == nil && !alive {
			dead = append(dead, t)
		}
	}
	if len(dead) == 0 {
		return found
	}
	var kept, orphans []proc.Match
	for _, m := range found {
		if slices.ContainsFunc(dead, func(t runstate.Tree) bool { return orphanOf(m.Process, t) }) {
			orphans = append(orphans, m)
		} else {
			kept = append(kept, m)
		}
	}
	if len(orphans) == 0 {
		return found
	}
	s.log(msg.OrphansKilled(s.cfg.Name, pidsOf(orphans)))
	s.killTrees(ctx, orphans)
	return kept
}

// orphanOf says whether p is what is left of t's dead master.
func orphanOf(p proc.Process, t runstate.Tree) bool {
	if p.ID == t.Master {
		return false
	}
	lead := t.Master.PID
	return slices.Contains(t.Members, p.ID) || (p.PGID == lead && p.SID == lead && p.ID.PID != lead)
}
