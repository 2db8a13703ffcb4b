// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/proc"
)

// fileKey names an executable file by device and inode, so a process is
// matched however the path it was started by is spelt (symlinks, bind
// mounts), and a binary replaced on disk (a new inode) is matched anew.
type fileKey struct{ dev, ino uint64 }

// exePaths is the set of watched executables, each with the CLOCK_MONOTONIC
// time its watch began. Its owner locks it.
type exePaths map[string]time.Duration

func checkExePath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("exec watch %q: path must be absolute", path)
	}
	return nil
}

// keys stats each watched path now; a path that does not exist (yet)
// matches nothing.
func (e exePaths) keys() map[fileKey]string {
	keys := make(map[fileKey]string, len(e))
	for path := range e {
		if k, err := statKey(path); err == nil {
			keys[k] = path
		}
	}
	return keys
}

func statKey(path string) (fileKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileKey{}, err
	}
	return fileKey{dev: st.Dev, ino: st.Ino}, nil
}

// execMatch tells which watched path the process pid runs, by following
// /proc/PID/exe (which stays valid even when the file was unlinked).
// Kernel threads and vanished processes match nothing.
func execMatch(procRoot string, pid int, keys map[fileKey]string) (string, bool) {
	k, err := statKey(procRoot + "/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return "", false
	}
	path, ok := keys[k]
	return path, ok
}

// scanExe lists the processes that run one of keys' executables.
func scanExe(procRoot string, keys map[fileKey]string) (map[proc.ID]string, error) {
	found := map[proc.ID]string{}
	if len(keys) == 0 {
		return found, nil
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		path, ok := execMatch(procRoot, pid, keys)
		if !ok {
			continue
		}
		id, err := readID(procRoot, pid)
		if err != nil {
			continue // exited meanwhile
		}
		found[id] = path
	}
	return found, nil
}

// execPoller synthesises Exec events for backends that have no kernel
// notification of exec (pidfd, proc): while exec watches exist it scans
// /proc every interval and reports each process newly seen running a
// watched executable. Latency is up to one interval, and a process that
// starts and exits between two scans is missed, as is a process that
// re-executes the executable it already runs.
type execPoller struct {
	procRoot string
	interval time.Duration
	emit     func(Event)
	log      *slog.Logger

	mu    sync.Mutex
	paths exePaths
	// seen holds the processes that ran a watched executable at the last
	// scan; only processes not in it are reported.
	seen map[proc.ID]string
	// fresh are the paths watched since the last scan, each with the
	// time its watch began in /proc's start-time ticks: at the next scan
	// a process running one that started then or before is the baseline,
	// not news. (Scanning /proc for each path as it is added made a start
	// of n services cost n scans of the host.)
	fresh map[string]uint64
	stop  chan struct{} // nil while no scanning goroutine runs
	done  chan struct{}
}

func newExecPoller(opt Options, emit func(Event)) *execPoller {
	return &execPoller{
		procRoot: opt.ProcRoot,
		interval: opt.PollInterval,
		emit:     emit,
		log:      opt.Logger,
		paths:    exePaths{},
		seen:     map[proc.ID]string{},
		fresh:    map[string]uint64{},
	}
}

// add watches path. Processes that started before it or in the same
// tick, and run it at the next scan, are not reported.
func (p *execPoller) add(path string) error {
	if err := checkExePath(path); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.paths[path]; ok {
		return nil
	}
	since, err := proc.UptimeTicks(p.procRoot)
	if err != nil {
		return err
	}
	p.paths[path], p.fresh[path] = monotonicNow(), since
	if p.stop == nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.loop(p.stop, p.done)
	}
	return nil
}

// remove stops watching path; the last one stops the scanning.
func (p *execPoller) remove(path string) {
	p.mu.Lock()
	delete(p.paths, path)
	delete(p.fresh, path)
	for id, seenPath := range p.seen {
		if seenPath == path {
			delete(p.seen, id)
		}
	}
	var stop, done chan struct{}
	if len(p.paths) == 0 && p.stop != nil {
		stop, done = p.stop, p.done
		p.stop, p.done = nil, nil
	}
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (p *execPoller) close() {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop, p.done = nil, nil
	p.paths = exePaths{}
	clear(p.fresh)
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (p *execPoller) loop(stop, done chan struct{}) {
	defer close(done)
	every(p.interval, stop, p.scan)
}

func (p *execPoller) scan() {
	p.mu.Lock()
	defer p.mu.Unlock()
	found, err := scanExe(p.procRoot, p.paths.keys())
	if err != nil {
		p.log.Warn("exec scan failed", "err", err)
		return
	}
	for id, path := range found {
		if since, ok := p.fresh[path]; ok && id.StartTime <= since {
			continue // there before the watch
		}
		if p.seen[id] != path {
			ev := Event{Kind: Exec, ID: id, Exe: path, At: monotonicNow()}
			if st, err := proc.ReadStat(p.procRoot, id.PID); err == nil {
				ev.PPID = st.PPID
			}
			p.emit(ev)
		}
	}
	p.seen = found
	clear(p.fresh)
}
