// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/internal/coalesce"
)

// A snapshot is the process table as one read of /proc saw it. Every
// service's matcher runs against the same snapshot: what one matcher needs
// of a process (its executable, its argv) is read once and kept for the
// others, and the processes are indexed by executable, so a scan costs the
// host's size once per read, and each service only its candidates.

// node is one process of a snapshot (or of a look among candidates).
type node struct {
	Process
	proc     procfs.Proc
	children []*node
	matched  bool // Among's own nodes only: a snapshot is shared

	exeOnce  sync.Once
	exePath  string
	argvOnce sync.Once
	argvList []string
	argsLine string // argvList[1:] joined, as the Args rule sees it
	argvOK   bool
	uidOnce  sync.Once
	uidVal   uint64
	uidOK    bool
	idOnce   sync.Once
	idSame   bool
}

// exe is the process's /proc/PID/exe; "" when it cannot be read (not
// root, or vanished).
func (n *node) exe() string {
	n.exeOnce.Do(func() { n.exePath, _ = n.proc.Executable() })
	return n.exePath
}

// argv is the process's command line; false when it could not be read.
func (n *node) argv() ([]string, bool) {
	n.readArgv()
	return n.argvList, n.argvOK
}

// args is argv[1:] joined as the Args rule sees it, made once for all the
// matchers that try this process (a thousand services of one executable
// try each other's processes).
func (n *node) args() string {
	n.readArgv()
	return n.argsLine
}

func (n *node) readArgv() {
	n.argvOnce.Do(func() {
		argv, err := n.proc.CmdLine()
		n.argvList, n.argsLine, n.argvOK = argv, ArgsLine(argv), err == nil
	})
}

// uid is the process's real user id.
func (n *node) uid() (uint64, bool) {
	n.uidOnce.Do(func() {
		if st, err := n.proc.NewStatus(); err == nil {
			n.uidVal, n.uidOK = st.UIDs[0], true
		}
	})
	return n.uidVal, n.uidOK
}

// sameIdentity says whether pid still holds the process the stat read saw.
func (n *node) sameIdentity(t *Table) bool {
	n.idOnce.Do(func() {
		id, _, err := t.Identity(n.ID.PID)
		n.idSame = err == nil && id == n.ID
	})
	return n.idSame
}

// process is n as a caller gets it, with its argv (read now if need be,
// best effort).
func (n *node) process() Process {
	p := n.Process
	p.Argv, _ = n.argv()
	return p
}

// Snapshot is every user-space process as one read of /proc saw it,
// indexed by pid. It is safe for concurrent use: many matchers share it.
type Snapshot struct {
	t     *Table
	nodes map[int]*node
	began time.Time // when its read began

	exeOnce sync.Once
	byExe   map[string][]*node // by executable, " (deleted)" cut off
}

// Snapshot reads stat of every process; kernel threads and processes that
// vanish while being read are left out.
func (t *Table) Snapshot() (*Snapshot, error) {
	began := time.Now()
	t.reads.Add(1)
	procs, err := t.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", t.root, err)
	}
	s := &Snapshot{t: t, nodes: make(map[int]*node, len(procs)), began: began}
	var buf [statBufSize]byte
	for _, p := range procs {
		b, err := readSmall(t.root+"/"+strconv.Itoa(p.PID)+"/stat", buf[:])
		var st Stat
		if err == nil {
			st, err = ParseStat(b)
		}
		if err != nil {
			if !IsGone(err) {
				t.log.Debug("skip unreadable process", "pid", p.PID, "err", err)
			}
			continue
		}
		if st.Flags&pfKthread != 0 {
			continue
		}
		s.nodes[p.PID] = &node{Process: processOf(ID{PID: p.PID, StartTime: st.StartTime}, st), proc: p}
	}
	for _, n := range s.nodes {
		if parent := s.nodes[n.PPID]; parent != nil && parent != n {
			parent.children = append(parent.children, n)
		}
	}
	for _, n := range s.nodes {
		slices.SortFunc(n.children, func(a, b *node) int { return a.ID.PID - b.ID.PID })
	}
	return s, nil
}

// Reads counts the reads of all of /proc this table has made (a scan, a
// snapshot), for tests and benchmarks.
func (t *Table) Reads() uint64 { return t.reads.Load() }

// Began is when the snapshot's read began.
func (s *Snapshot) Began() time.Time { return s.began }

// Len is how many processes it holds.
func (s *Snapshot) Len() int { return len(s.nodes) }

// candidates are the processes c could match: those running its
// executable when it names one that is no script, else all.
func (s *Snapshot) candidates(c *matcher) []*node {
	if c.Exe == "" || c.script != nil {
		all := make([]*node, 0, len(s.nodes))
		for _, n := range s.nodes {
			all = append(all, n)
		}
		return all
	}
	s.exeOnce.Do(func() {
		s.byExe = map[string][]*node{}
		for _, n := range s.nodes {
			if n.State.Dead() {
				continue
			}
			if exe := n.exe(); exe != "" {
				key := strings.TrimSuffix(exe, deletedSuffix)
				s.byExe[key] = append(s.byExe[key], n)
			}
		}
	})
	if len(c.exes) == 1 {
		return s.byExe[c.exes[0]] // shared: read only (no copy per service)
	}
	var out []*node
	for _, e := range c.exes {
		out = append(out, s.byExe[e]...)
	}
	return out
}

// Scan returns the top-level processes of the snapshot that match m (no
// ancestor of theirs matches), each with its descendants, ordered by pid.
func (s *Snapshot) Scan(m Matcher) ([]Match, error) {
	t := s.t
	c := compile(m)
	matched := map[*node]bool{}
	if m.PIDFile != "" {
		n, err := t.pidfileCandidate(c, s)
		if n == nil || err != nil {
			return nil, err
		}
		matched[n] = true
	} else {
		for _, n := range s.candidates(c) {
			if t.matches(c, n) {
				matched[n] = true
			}
		}
	}
	var out []Match
	for n := range matched {
		if !s.ancestorMatched(n, matched) {
			out = append(out, Match{Process: n.process(), Descendants: s.below(n)})
		}
	}
	slices.SortFunc(out, func(a, b Match) int { return a.ID.PID - b.ID.PID })
	return out, nil
}

// ancestorMatched reports whether a process above n matched.
func (s *Snapshot) ancestorMatched(n *node, matched map[*node]bool) bool {
	for steps, p := 0, s.nodes[n.PPID]; p != nil && p != n && steps < len(s.nodes); steps, p = steps+1, s.nodes[p.PPID] {
		if matched[p] {
			return true
		}
	}
	return false
}

// below lists every process under n, parents before children. It reads
// their argv on the way, best effort.
func (s *Snapshot) below(n *node) []Process {
	var out []Process
	queue := slices.Clone(n.children)
	seen := map[int]bool{n.ID.PID: true}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c.ID.PID] { // a loop only a torn read could make
			continue
		}
		seen[c.ID.PID] = true
		out = append(out, c.process())
		queue = append(queue, c.children...)
	}
	return out
}

// Below lists the identities of every process under id, parents before
// children, without reading anything more (the limits' sampler); false
// when the snapshot does not hold id.
func (s *Snapshot) Below(id ID) ([]ID, bool) {
	n := s.nodes[id.PID]
	if n == nil || n.ID != id {
		return nil, false
	}
	var out []ID
	queue := slices.Clone(n.children)
	seen := map[int]bool{id.PID: true}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if !seen[c.ID.PID] {
			seen[c.ID.PID] = true
			out = append(out, c.ID)
			queue = append(queue, c.children...)
		}
	}
	return out, true
}

// Group lists the processes of the process group or the session that
// leader led, started no earlier than leader: what a restart script left
// running, its double-forked daemons aside. Once leader is reaped its
// number may be given to a new process, which may lead a group of its own:
// then nothing is listed, rather than a stranger's group.
func (s *Snapshot) Group(leader ID) []ID {
	if n := s.nodes[leader.PID]; n != nil && n.ID != leader {
		return nil
	}
	var out []ID
	for _, n := range s.nodes {
		if (n.PGID == leader.PID || n.SID == leader.PID) && n.ID.StartTime >= leader.StartTime {
			out = append(out, n.ID)
		}
	}
	slices.SortFunc(out, func(a, b ID) int { return a.PID - b.PID })
	return out
}

// Snapshots shares reads of one table among many callers (every service's
// supervisor): callers that ask at once get the same read, so a start or a
// reload of any number of services reads /proc a few times, not once per
// service.
type Snapshots struct {
	reads *coalesce.Reads[*Snapshot]
}

// NewSnapshots shares t's reads; a read serves Recent for at most retain,
// and is let go then, so that a quiet pcheck keeps no copy of the table.
func NewSnapshots(t *Table, retain time.Duration) *Snapshots {
	return &Snapshots{reads: coalesce.New(t.Snapshot, retain)}
}

// Fresh returns a snapshot whose read began after the call: what a caller
// that must not miss a process started before it asked (a start, a
// reload, the look after a failed attempt) needs.
func (s *Snapshots) Fresh() (*Snapshot, error) { return s.reads.Fresh() }

// Recent returns a snapshot whose read began at most maxAge ago: what
// periodic looks need (every service looking each period shares one read).
func (s *Snapshots) Recent(maxAge time.Duration) (*Snapshot, error) { return s.reads.Recent(maxAge) }

// Since returns a snapshot whose read began at or after t: what the first
// looks of services started together need (one read for all of them).
func (s *Snapshots) Since(t time.Time) (*Snapshot, error) { return s.reads.Since(t) }

// Read is the process that has pid now, from its stat alone (no argv).
func (t *Table) Read(pid int) (Process, error) {
	st, err := t.stat(pid)
	if err != nil {
		return Process{}, err
	}
	return processOf(ID{PID: pid, StartTime: st.StartTime}, st), nil
}

// processOf is id as its stat shows it (no argv).
func processOf(id ID, st Stat) Process {
	return Process{ID: id, PPID: st.PPID, State: st.State, Comm: st.Comm, PGID: st.PGID, SID: st.SID}
}

// ArgsLine is what a Matcher's Args rule searches: argv[1:] joined by one
// space.
func ArgsLine(argv []string) string {
	if len(argv) < 2 {
		return ""
	}
	return strings.Join(argv[1:], " ")
}
