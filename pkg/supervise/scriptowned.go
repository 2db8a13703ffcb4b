// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"slices"
	"sync"

	"github.com/pwatch/pwatch/pkg/proc"
)

// Whose processes are the service's: root's (or pcheck's own uid's), or
// the pfile's user's (pkg/proc's matcher), and one more case kept here:
// those pcheck's own restart script started, whatever user it made them
// (`setpriv --reuid 65534 DAEMON &`, `su -s /bin/sh nobody -c DAEMON`).
//
//   - While an attempt looks for the service, the processes of its
//     script's tree (fork events, on ebpf and netlink) are granted: they
//     match whatever their uid, once their executable and args do. pidfd
//     and proc keep no trees: there the rule stays root-or-user.
//   - Once adopted, a granted master's identity (pid, start time) stays
//     granted: its death is the service's, a pause and a start find it
//     again. It is dropped at the next attempt that adopts without it.
//   - A reload's supervisor carries them. A successor pcheck cannot know
//     how a uid came to be: it grants only the exact identities the
//     runstate trees record (the state directory) marks script-owned,
//     and, when it waited for a restart script its predecessor left
//     running, what that script left in its process group.
//
// A process of the same executable and uid started by anyone else is in
// no such tree and no record: it is never taken for the service.

// scriptOwned is what a Service grants, under a lock of its own (History
// reads it from another goroutine); Processes.Grant hands it to the
// matcher that every look uses.
type scriptOwned struct {
	mu     sync.Mutex
	script proc.ID   // the attempt's restart script; zero between attempts
	tree   []proc.ID // the script's tree at the last look
	kept   []proc.ID // adopted masters it started as another user
}

// allLocked is kept and the script's trees, as one list. o.mu is held.
func (o *scriptOwned) allLocked() []proc.ID {
	return append(slices.Clone(o.kept), o.tree...)
}

// followedScript says the attempt's restart script is script: what it
// starts is looked for among its tree (where the backend keeps trees).
// The backend rooted that tree at the script's fork, so what the script
// forked before pcheck got here is in it too.
func (s *Service) followedScript(script proc.ID) {
	if script.PID == 0 || !s.d.Watcher.KeepsTrees() {
		return
	}
	s.owned.mu.Lock()
	s.owned.script, s.owned.tree = script, nil
	s.owned.mu.Unlock()
}

// grantScriptTree grants, before a look, what the script's trees hold now.
func (s *Service) grantScriptTree() {
	s.owned.mu.Lock()
	script := s.owned.script
	s.owned.mu.Unlock()
	if script.PID == 0 {
		return
	}
	tree, ok := s.d.Watcher.Tree(script)
	if !ok {
		return // events lost: what is not root's or user's is not taken
	}
	var ids []proc.ID
	for _, p := range tree {
		ids = append(ids, p.ID)
	}
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	if s.owned.script != script {
		return
	}
	s.owned.tree = ids
	s.d.Processes.Grant(s.owned.allLocked())
}

// scriptDone ends the attempt's grants: of found (what it adopted, none
// when it failed), the masters that were granted stay granted.
func (s *Service) scriptDone(found []proc.Match) {
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	if len(found) > 0 {
		granted := s.owned.allLocked()
		var kept []proc.ID
		for _, m := range found {
			if slices.Contains(granted, m.ID) {
				kept = append(kept, m.ID)
			}
		}
		if len(kept) > 0 {
			// Debug: most are of the pfile's user anyway; the grant
			// matters for those that are not (docs/behaviour.md).
			s.d.Slog.Debug("adopted processes pcheck's restart script started: they are the service's whatever their uid",
				"service", s.cfg.Name, "pids", idPIDs(kept))
		}
		s.owned.kept = kept
	}
	s.owned.script, s.owned.tree = proc.ID{}, nil
	s.d.Processes.Grant(s.owned.kept)
}

// scriptGave says whether id is a master granted as the script's.
func (s *Service) scriptGave(id proc.ID) bool {
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	return slices.Contains(s.owned.kept, id)
}

// restoreScriptOwned grants the masters the previous pcheck of this boot
// recorded as its restart script's, by their exact identity.
func (s *Service) restoreScriptOwned() {
	if s.d.RunState == nil {
		return
	}
	trees, err := s.d.RunState.Trees(s.cfg.Name)
	if err != nil {
		return // dropOrphans reports it
	}
	var kept []proc.ID
	for _, t := range trees {
		if t.ScriptOwned {
			kept = append(kept, t.Master)
		}
	}
	if len(kept) == 0 {
		return
	}
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	if len(s.owned.kept) == 0 { // a reload carried them already
		s.owned.kept = kept
		s.d.Processes.Grant(kept)
	}
}

// keepGroupOf grants what the restart script a previous pcheck left
// running started in its process group (its own, which only processes of
// that pcheck's session could join): the successor has no tree of it.
// What left the group (su -c makes a session of its own) is not known.
func (s *Service) keepGroupOf(script proc.ID) {
	group, err := s.d.Processes.Group(script)
	if err != nil || len(group) == 0 {
		return
	}
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	s.owned.kept = append(s.owned.kept, group...)
	s.d.Processes.Grant(s.owned.allLocked())
}

// keptScriptOwned are the granted masters, for a reload's supervisor.
func (s *Service) keptScriptOwned() []proc.ID {
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	return slices.Clone(s.owned.kept)
}

// carryScriptOwned grants what the supervisor a reload replaced had kept.
func (s *Service) carryScriptOwned(kept []proc.ID) {
	if len(kept) == 0 {
		return
	}
	s.owned.mu.Lock()
	defer s.owned.mu.Unlock()
	s.owned.kept = slices.Clone(kept)
	s.d.Processes.Grant(kept)
}

func idPIDs(ids []proc.ID) []int {
	pids := make([]int, len(ids))
	for i, id := range ids {
		pids[i] = id.PID
	}
	return pids
}
