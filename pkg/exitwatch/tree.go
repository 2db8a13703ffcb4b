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
	// Each process pcheck itself forks roots its tree at its fork: Follow
	// of one of them only confirms it, and its tree holds what it forked
	// before the call too.
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
func treeOf(table treeTable, root proc.ID) []proc.Process {
	return indexTrees(table).tree(root)
}

// treeIndex is a table of tracked processes indexed by tree and by
// parent: one tree is read in O(its size), not the table's. Each index is
// one slice grouped by its key and a map of the keys' spans in it: a few
// allocations a read, not one a key (a start reads the table hundreds of
// times).
type treeIndex struct {
	table    treeTable
	children map[int]span // by recorded parent, into kids
	kids     []trackedProc
	byRoot   map[proc.ID]span // by the tree they are tagged with, into tagged
	tagged   []trackedProc
}

// span is a key's processes in a grouped slice: [lo, hi).
type span struct{ lo, hi int32 }

func indexTrees(table treeTable) *treeIndex {
	x := &treeIndex{table: table, children: make(map[int]span, len(table)/2), byRoot: make(map[proc.ID]span, len(table)/2)}
	x.kids = groupBy(table, x.children, func(p trackedProc) int { return p.ppid })
	x.tagged = groupBy(table, x.byRoot, func(p trackedProc) proc.ID { return p.root })
	return x
}

// groupBy lays table's processes out in one slice grouped by key, with
// each key's span in spans (empty on entry).
func groupBy[K comparable](table treeTable, spans map[K]span, key func(trackedProc) K) []trackedProc {
	for _, p := range table { // count each key's processes in hi
		s := spans[key(p)]
		s.hi++
		spans[key(p)] = s
	}
	var next int32
	for k, s := range spans { // each key's start; hi fills up from it
		spans[k] = span{next, next}
		next += s.hi
	}
	out := make([]trackedProc, len(table))
	for _, p := range table {
		k := key(p)
		s := spans[k]
		out[s.hi] = p
		s.hi++
		spans[k] = s
	}
	return out
}

func (x *treeIndex) childrenOf(pid int) []trackedProc {
	s := x.children[pid]
	return x.kids[s.lo:s.hi]
}

// tree is treeOf on the index: the processes tagged with root, and those
// reached from root down recorded parents, each no older than its parent.
func (x *treeIndex) tree(root proc.ID) []proc.Process {
	in := map[int]trackedProc{}
	s := x.byRoot[root]
	for _, p := range x.tagged[s.lo:s.hi] {
		if p.id != root && p.id.StartTime >= root.StartTime {
			in[p.id.PID] = p
		}
	}
	// root's pid now holding another process: its children are not root's.
	if cur, tracked := x.table[root.PID]; !tracked || cur.id == root {
		type step struct {
			p     trackedProc
			depth int
		}
		var queue []step
		visited := map[int]bool{}
		for _, c := range x.childrenOf(root.PID) {
			queue = append(queue, step{c, 1})
		}
		for len(queue) > 0 {
			c := queue[0]
			queue = queue[1:]
			if c.p.id == root || c.p.id.StartTime < root.StartTime || c.depth > maxTreeDepth {
				continue
			}
			if visited[c.p.id.PID] {
				continue // reached twice: a loop only a torn table could make
			}
			visited[c.p.id.PID] = true
			in[c.p.id.PID] = c.p
			for _, g := range x.childrenOf(c.p.id.PID) {
				if g.id.StartTime >= c.p.id.StartTime {
					queue = append(queue, step{g, c.depth + 1})
				}
			}
		}
	}
	out := make([]proc.Process, 0, len(in))
	for _, p := range in {
		out = append(out, proc.Process{ID: p.id, PPID: p.ppid})
	}
	slices.SortFunc(out, func(a, b proc.Process) int { return a.ID.PID - b.ID.PID })
	return out
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
