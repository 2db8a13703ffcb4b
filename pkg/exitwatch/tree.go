// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"slices"

	"github.com/pwatch/pwatch/pkg/proc"
)

// The event backends (ebpf, netlink) keep each watched process's tree from
// fork, exec and exit events: a fork by a tracked process tracks the child
// in its parent's tree, an exit drops the process, an exec of a watched
// executable starts a tree of its own (a new master, before anyone watches
// it). So what is left of a dead service, and where a restarted one went,
// is known without reading /proc. pidfd and proc see no forks: they keep
// no trees, and their users scan /proc.

// ErrNoTree says a backend keeps no trees (pidfd, proc), or no longer
// trusts them (its table overflowed): read /proc instead.
var ErrNoTree = errors.New("no process tree kept from events")

// treeKeeper is a backend that keeps trees.
type treeKeeper interface {
	// Track puts descendants, found by a scan, into the tree of root
	// (watched): those already tracked elsewhere are moved under it.
	Track(root proc.ID, descendants []proc.Process) error
	// Tree lists the processes of root's tree as events left it (root
	// itself excluded, parents before children as far as pids tell):
	// processes that have exited are not in it, though an identity may
	// have ended since; every signal must still check it.
	Tree(root proc.ID) ([]proc.Process, error)
	// Follow starts a tree at root, unwatched (its exit is not reported),
	// unless root is in a tree already: what it forks from now on is
	// known (a restart script's daemon, to kill after a failed attempt).
	Follow(root proc.ID, ppid int) error
}

// trackedProc is one process of a tree.
type trackedProc struct {
	id      proc.ID
	ppid    int     // its parent when it was forked (or exec'd)
	root    proc.ID // the tree it belongs to
	watched bool    // its exit is reported
}

// maxTreeDepth bounds a walk up recorded parents (a torn table cannot loop).
const maxTreeDepth = 64

// treeOf selects root's tree from a table of tracked processes: every
// process tagged with root, and every process whose recorded parents lead
// to root (one forked before a scan re-rooted its parent). A process is
// never older than its parent, which keeps a child of an earlier holder of
// root's pid out.
func treeOf(table map[int]trackedProc, root proc.ID) []proc.Process {
	var out []proc.Process
	for _, p := range table {
		if p.id == root || p.id.StartTime < root.StartTime {
			continue
		}
		if p.root == root || descendsFrom(table, p, root) {
			out = append(out, proc.Process{ID: p.id, PPID: p.ppid})
		}
	}
	slices.SortFunc(out, func(a, b proc.Process) int { return a.ID.PID - b.ID.PID })
	return out
}

func descendsFrom(table map[int]trackedProc, p trackedProc, root proc.ID) bool {
	for range maxTreeDepth {
		if p.ppid == root.PID {
			parent, tracked := table[root.PID]
			return !tracked || parent.id == root // root may have exited
		}
		parent, ok := table[p.ppid]
		if !ok || parent.id.StartTime > p.id.StartTime {
			return false
		}
		p = parent
	}
	return false
}

// treeTable is the trees kept in user space (netlink). Its owner locks it.
type treeTable map[int]trackedProc

// watch makes id a watched root (re-rooting it if another tree held it).
func (t treeTable) watch(id proc.ID, ppid int) {
	t[id.PID] = trackedProc{id: id, ppid: ppid, root: id, watched: true}
}

// unwatch stops reporting id's exit; its tree stays tracked while it lives.
func (t treeTable) unwatch(id proc.ID) {
	if p, ok := t[id.PID]; ok && p.id == id {
		p.watched = false
		t[id.PID] = p
	}
}

// track puts descendants under root, leaving watched processes (another
// service's roots) alone.
func (t treeTable) track(root proc.ID, descendants []proc.Process) {
	for _, d := range descendants {
		if p, ok := t[d.ID.PID]; ok && p.id == d.ID && p.watched {
			continue
		}
		t[d.ID.PID] = trackedProc{id: d.ID, ppid: d.PPID, root: root}
	}
}

// forked tracks child when its parent is tracked; false when it is not.
func (t treeTable) forked(parent int, child proc.ID) bool {
	p, ok := t[parent]
	if !ok || p.id.StartTime > child.StartTime {
		return false
	}
	t[child.PID] = trackedProc{id: child, ppid: parent, root: p.root}
	return true
}

// execed starts a tree at id, unless it is in one.
func (t treeTable) execed(id proc.ID, ppid int) {
	if p, ok := t[id.PID]; ok && p.id == id {
		return
	}
	t[id.PID] = trackedProc{id: id, ppid: ppid, root: id}
}

// exited drops id.
func (t treeTable) exited(id proc.ID) {
	if p, ok := t[id.PID]; ok && p.id == id {
		delete(t, id.PID)
	}
}
