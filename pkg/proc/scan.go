// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Match is a top-level matching process (no ancestor of it matches) with
// every process below it, matching or not: the master with its workers and
// their CGI children.
type Match struct {
	Process
	// Descendants are listed parents before children.
	Descendants []Process
}

// IDs lists the match and its descendants, the master first: what Kill
// takes to end the whole tree.
func (m Match) IDs() []ID {
	ids := make([]ID, 0, 1+len(m.Descendants))
	ids = append(ids, m.ID)
	for _, d := range m.Descendants {
		ids = append(ids, d.ID)
	}
	return ids
}

// Scan returns the top-level processes that match m, each with its
// descendants, ordered by pid, from a read of /proc of its own. Processes
// vanishing during the scan are left out; an error means the table itself
// could not be read. Many matchers share one read through Snapshots.
func (t *Table) Scan(m Matcher) ([]Match, error) {
	s, err := t.Snapshot()
	if err != nil {
		return nil, err
	}
	return s.Scan(m)
}

// matches reads what c needs of n, cheapest first, and decides; what it
// reads stays with n for the next matcher. A process that changed identity
// while being read does not match.
func (t *Table) matches(c *matcher, n *node) bool {
	if n.State.Dead() {
		return false // a zombie has no exe nor argv left to match
	}
	// Not root, or vanished: without exe only a script match could hold.
	exe := n.exe()
	if !c.needsArgv(exe) {
		return false
	}
	argv, ok := n.argv()
	if !ok || !c.matchesArgv(exe, argv, n.args()) {
		return false
	}
	if uid, ok := n.uid(); !ok || !c.ownedBy(uid) && !c.Granted.Has(n.ID) {
		return false
	}
	// The pid may have been reused between the stat read and the others.
	return n.sameIdentity(t)
}

// pidfileCandidate returns the process named by c's pidfile when it matches
// c and had started by the time pcheck first saw the file as it is now; nil
// when there is none. Only a pidfile that cannot be read (other than
// missing) is an error.
//
// No wall clock is involved (a clock step must not make a running service
// look down): a process's start is in clock ticks since boot, and so is the
// moment pcheck first saw this version of the file (its inode, size,
// modification stamp and content). A pid that a newer process took over
// after the file was seen is stale. The first look at a file (pcheck's
// start) can only check the content and the matcher.
func (t *Table) pidfileCandidate(c *matcher, s *Snapshot) (*node, error) {
	path := c.PIDFile
	f, err := openIfRegular(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pidfile: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read pidfile: %w", err)
	}
	if why := c.pidfileUnsafe(info); why != "" {
		t.refusePIDFile(path, why)
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("read pidfile: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	pid, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	if err != nil || pid <= 0 {
		t.log.Warn("pidfile holds no pid", "pidfile", path, "bytes", len(data)) // never its text: a link to /etc/shadow passes the owner check
		return nil, nil
	}
	seen, err := t.pidfileSeen(path, info, pid)
	if err != nil {
		return nil, fmt.Errorf("read pidfile %s: %w", path, err)
	}
	n := s.nodes[pid]
	if n == nil || !t.matches(c, n) {
		t.log.Debug("pidfile names no matching process", "pidfile", path, "pid", pid)
		return nil, nil
	}
	if n.ID.StartTime > seen {
		t.log.Debug("stale pidfile: its pid belongs to a process started after the file was seen",
			"pidfile", path, "pid", pid, "start_ticks", n.ID.StartTime, "seen_ticks", seen)
		return nil, nil
	}
	return n, nil
}

// refusePIDFile logs, once for each reason, that the pidfile at path is
// not believed: no pid is read from it.
func (t *Table) refusePIDFile(path, why string) {
	t.pidfileMu.Lock()
	defer t.pidfileMu.Unlock()
	if t.refused[path] == why {
		return
	}
	if t.refused == nil {
		t.refused = map[string]string{}
	}
	t.refused[path] = why
	t.log.Warn("pidfile refused: others than the service's owners could have written it, so its pid is not believed", "pidfile", path, "reason", why)
}

// pidfileVersion tells one writing of a pidfile from another.
type pidfileVersion struct {
	dev, ino uint64
	size     int64
	mtime    int64 // as a stamp only: never compared with a clock
	pid      int
}

// pidfileSeen is the moment, in clock ticks since boot, pcheck first saw
// this version of the pidfile at path.
func (t *Table) pidfileSeen(path string, info os.FileInfo, pid int) (uint64, error) {
	v := pidfileVersion{size: info.Size(), mtime: info.ModTime().UnixNano(), pid: pid}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = st.Dev, st.Ino
	}
	t.pidfileMu.Lock()
	defer t.pidfileMu.Unlock()
	if got, ok := t.pidfiles[path]; ok && got.version == v {
		return got.ticks, nil
	}
	now, err := t.uptimeTicks()
	if err != nil {
		return 0, err
	}
	if t.pidfiles == nil {
		t.pidfiles = map[string]pidfileSighting{}
	}
	t.pidfiles[path] = pidfileSighting{version: v, ticks: now}
	return now, nil
}

type pidfileSighting struct {
	version pidfileVersion
	ticks   uint64
}

// uptimeTicks is the time since boot in the unit of /proc start times,
// from the same clock (CLOCK_BOOTTIME, through the table's uptime file).
func (t *Table) uptimeTicks() (uint64, error) { return UptimeTicks(t.root) }

// UptimeTicks is the time since boot in the unit of /proc start times,
// from the same clock (CLOCK_BOOTTIME, through root's uptime file).
func UptimeTicks(root string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(root, "uptime"))
	if err != nil {
		return 0, err
	}
	field, _, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	secs, frac, _ := strings.Cut(field, ".")
	whole, err := strconv.ParseUint(secs, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/uptime: %q is not seconds", root, field)
	}
	// /proc/uptime has two decimals: hundredths, which are ticks.
	hundredths := uint64(0)
	if len(frac) >= 2 {
		if h, err := strconv.ParseUint(frac[:2], 10, 64); err == nil {
			hundredths = h
		}
	}
	return whole*TicksPerSecond + hundredths*TicksPerSecond/100, nil
}

// Descendants lists every process below id now, parents before children.
// It is ErrGone when id itself is no longer there. Once a master has died
// its children belong to init or a subreaper, so a caller cleaning up after
// a death should kill the descendants it remembered from an earlier scan.
func (t *Table) Descendants(id ID) ([]Process, error) {
	s, err := t.Snapshot()
	if err != nil {
		return nil, err
	}
	n := s.nodes[id.PID]
	if n == nil || n.ID != id {
		return nil, fmt.Errorf("%v: %w", id, ErrGone)
	}
	return s.below(n), nil
}
