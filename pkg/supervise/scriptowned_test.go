// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/runstate"
)

// scriptStarts makes the fake's running process (of another user: the
// service's only when granted) a member of every restart script's tree,
// as the ebpf and netlink backends' fork events would.
func scriptStarts(h *harness) {
	h.procs.grantOnly = true
	h.watch.trees = true
	h.watch.tree = func(root proc.ID) []proc.Process {
		h.procs.mu.Lock()
		defer h.procs.mu.Unlock()
		if h.procs.cur == nil || root.PID >= 1000 && root.PID < 2000 { // a service's own
			return nil
		}
		return []proc.Process{{ID: h.procs.cur.ID}}
	}
}

func (f *fakeProcs) grants() []proc.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.granted)
}

// TestScriptStartedProcessIsTheService: what the restart script started
// is granted while the attempt looks for it, stays granted once adopted
// (by identity alone: the next attempt's replaces it), and is recorded as
// script-owned for a successor.
func TestScriptStartedProcessIsTheService(t *testing.T) {
	h := newHarness(t, "ok", nil)
	scriptStarts(h)
	runs := &fakeRunState{}
	h.svc.d.RunState = runs
	h.run(t)
	h.log.waitLines(t, 0, "Try to restart ('web')", "('web',pid=1001) Up")
	first := proc.ID{PID: 1001, StartTime: 1}
	if got := h.procs.grants(); !slices.Equal(got, []proc.ID{first}) {
		t.Fatalf("granted %v once Up, want the adopted %v alone", got, first)
	}
	if trees := runs.trees(); len(trees) != 1 || trees[0].Master != first || !trees[0].ScriptOwned {
		t.Fatalf("recorded %+v, want %v marked script-owned", trees, first)
	}
	h.kill(9)
	h.log.waitLines(t, 2, "Process ['web',pid=1001] Down", "Try to restart ('web')", "('web',pid=1002) Up")
	if got := h.procs.grants(); !slices.Equal(got, []proc.ID{{PID: 1002, StartTime: 2}}) {
		t.Fatalf("granted %v after the restart, want the new process alone", got)
	}

	// A successor grants the recorded identity, and adopts it.
	next := newHarness(t, "ok", nil)
	next.procs = h.procs // the same process table
	next.svc.d.Processes = h.procs
	next.svc.d.RunState = runs
	h.procs.mu.Lock()
	h.procs.granted = nil
	h.procs.mu.Unlock()
	next.run(t)
	next.log.waitLines(t, 0, "Running service adopted ('web',pid=1002)")
}

// TestScriptStartedIsNotKnownWithoutTrees: pidfd and proc keep no trees,
// so what the script started as another user is not the service's.
func TestScriptStartedIsNotKnownWithoutTrees(t *testing.T) {
	h := newHarness(t, "ok", func(c *pfile.Service) { c.RestartTimeout = 300 * time.Millisecond; c.RetryCount = 0 })
	scriptStarts(h)
	h.watch.trees = false
	h.run(t)
	h.log.waitLines(t, 0, "Try to restart ('web')", "Set pid fail ('web')")
	if got := h.procs.grants(); len(got) != 0 {
		t.Fatalf("granted %v without trees", got)
	}
	if st := h.svc.State(); st == Up {
		t.Fatalf("state %v", st)
	}
}

// fakeRunState keeps the records in memory.
type fakeRunState struct {
	mu      sync.Mutex
	watched []runstate.Tree
}

func (r *fakeRunState) ScriptStarted(string, int) error       { return nil }
func (r *fakeRunState) ScriptEnded(string) error              { return nil }
func (r *fakeRunState) Script(string) (proc.ID, bool, error)  { return proc.ID{}, false, nil }
func (r *fakeRunState) Trees(string) ([]runstate.Tree, error) { return r.trees(), nil }
func (r *fakeRunState) Watched(_ string, t []runstate.Tree) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched = slices.Clone(t)
	return nil
}

func (r *fakeRunState) trees() []runstate.Tree {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.watched)
}
