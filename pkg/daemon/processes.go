// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"time"

	"github.com/pwatch/pwatch/pkg/proc"
)

// serviceProcesses is the process table seen through one service's
// matcher: what supervise.Processes asks for. Reads of all of /proc are
// shared with every other service (proc.Snapshots).
type serviceProcesses struct {
	table   *proc.Table
	snaps   *proc.Snapshots
	matcher proc.Matcher
	perPID  bool // matcher.PerPID(), decided once
}

func (p serviceProcesses) Find() ([]proc.Match, error) {
	s, err := p.snaps.Fresh()
	if err != nil {
		return nil, err
	}
	return s.Scan(p.matcher)
}

func (p serviceProcesses) FindSince(t time.Time) ([]proc.Match, error) {
	s, err := p.snaps.Since(t)
	if err != nil {
		return nil, err
	}
	return s.Scan(p.matcher)
}

func (p serviceProcesses) Admits(argLine string) bool {
	return p.matcher.Args.Match(argLine)
}

func (p serviceProcesses) Read(pid int) (proc.Process, error) { return p.table.Read(pid) }

func (p serviceProcesses) Group(leader proc.ID) ([]proc.ID, error) {
	s, err := p.snaps.Fresh()
	if err != nil {
		return nil, err
	}
	return s.Group(leader), nil
}

func (p serviceProcesses) Kill(ctx context.Context, ids []proc.ID, o proc.KillOptions) ([]proc.ID, error) {
	return p.table.Kill(ctx, ids, o)
}

func (p serviceProcesses) Alive(id proc.ID) (bool, error) { return p.table.Alive(id) }

func (p serviceProcesses) WaitExited(ctx context.Context, id proc.ID) error {
	return p.table.WaitExited(ctx, id)
}

// Grant sets the matcher's Granted, which every look shares.
func (p serviceProcesses) Grant(ids []proc.ID) { p.matcher.Granted.Set(ids) }

func (p serviceProcesses) Among(cands []proc.Process) ([]proc.Match, bool, error) {
	if !p.perPID {
		return nil, false, nil
	}
	found, err := p.table.Among(p.matcher, cands)
	return found, true, err
}
