// SPDX-License-Identifier: Apache-2.0

package proc

import "slices"

// PerPID says whether a process can be matched by reading only its own
// /proc entry and its ancestors': false for a pidfile (the file names the
// candidate) and for a #! script (its processes run the interpreter, so no
// exec of the script itself is ever seen).
func (m Matcher) PerPID() bool {
	return m.PIDFile == "" && compile(m).script == nil
}

// Among returns the top-level processes matching m among cands (no
// ancestor of theirs matches), each with its descendants among cands,
// ordered by pid. It reads /proc only for the candidates and their
// ancestors: its cost grows with the service, never with the host. A
// candidate that has exited, or whose pid now holds another process, is
// left out. Callers must check m.PerPID first.
func (t *Table) Among(m Matcher, cands []Process) ([]Match, error) {
	c := compile(m)
	nodes := map[int]*node{}
	for _, cand := range cands {
		if _, seen := nodes[cand.ID.PID]; seen {
			continue
		}
		if n := t.read(cand.ID); n != nil {
			n.matched = t.matches(c, n)
			nodes[n.ID.PID] = n
		}
	}
	// Ancestors outside cands are read when needed, and remembered.
	ancestor := func(pid int) *node {
		if n, ok := nodes[pid]; ok {
			return n
		}
		id, _, err := t.Identity(pid)
		if err != nil {
			return nil
		}
		n := t.read(id)
		if n != nil {
			n.matched = t.matches(c, n)
			nodes[pid] = n
		}
		return n
	}
	var out []Match
	for _, cand := range cands {
		n := nodes[cand.ID.PID]
		if n == nil || !n.matched || n.ID != cand.ID || slices.ContainsFunc(out, func(o Match) bool { return o.ID == n.ID }) {
			continue
		}
		if matchedAbove(n, ancestor) {
			continue
		}
		var below []Process
		for _, d := range nodes {
			if d != n && descends(d, n, nodes) {
				below = append(below, d.process())
			}
		}
		slices.SortFunc(below, func(a, b Process) int { return a.ID.PID - b.ID.PID })
		out = append(out, Match{Process: n.process(), Descendants: below})
	}
	slices.SortFunc(out, func(a, b Match) int { return a.ID.PID - b.ID.PID })
	return out, nil
}

// read is one process as a scan would see it; nil when id no longer runs
// (or never ran) or is a kernel thread.
func (t *Table) read(id ID) *node {
	st, err := t.stat(id.PID)
	if err != nil || st.StartTime != id.StartTime || st.Flags&pfKthread != 0 {
		return nil
	}
	p, err := t.fs.Proc(id.PID)
	if err != nil {
		return nil
	}
	return &node{Process: processOf(id, st), proc: p}
}

// maxDepth bounds walks up the parent chain (a torn read cannot loop).
const maxDepth = 256

// matchedAbove reports whether an ancestor of n matches.
func matchedAbove(n *node, ancestor func(int) *node) bool {
	pid := n.PPID
	for range maxDepth {
		if pid <= 1 {
			return false // init and the kernel's threads are no service
		}
		a := ancestor(pid)
		if a == nil {
			return false
		}
		if a.matched {
			return true
		}
		pid = a.PPID
	}
	return false
}

// descends reports whether d's parents, as read now, lead to top.
func descends(d, top *node, nodes map[int]*node) bool {
	pid := d.PPID
	for range maxDepth {
		if pid == top.ID.PID {
			return true
		}
		p, ok := nodes[pid]
		if !ok {
			return false
		}
		pid = p.PPID
	}
	return false
}
