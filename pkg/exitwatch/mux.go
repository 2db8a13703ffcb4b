// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/proc"
)

// Mux shares the host's one backend among many views (one per service):
// it remembers which views watch which process (two pfiles may match the
// same one) and hands each event to every owner, straight from the
// backend's reader: one goroutine hand-off from the kernel's event to the
// sink's owner. A watch the backend refuses (a full BPF map) is polled
// here instead, so a view's Watch never fails.
type Mux struct {
	w        Watcher
	trees    treeKeeper // the backend, when it keeps trees; else nil
	procRoot string
	poll     time.Duration
	log      *slog.Logger
	oom      *oomLog       // nil: the kernel log cannot be read here
	oomDone  chan struct{} // closed when the kernel log's drainer ended

	mu       sync.Mutex
	owners   map[proc.ID][]*View
	execs    map[string][]*View
	views    map[*View]struct{}
	polled   map[proc.ID]struct{}
	pollStop chan struct{} // nil while nothing is polled
}

// OpenMux opens the named backend (or auto's choice) behind a Mux.
func OpenMux(name string, opt Options) (*Mux, error) {
	opt = opt.withDefaults()
	m := &Mux{
		procRoot: opt.ProcRoot,
		poll:     opt.PollInterval,
		log:      opt.Logger,
		owners:   map[proc.ID][]*View{},
		execs:    map[string][]*View{},
		views:    map[*View]struct{}{},
		polled:   map[proc.ID]struct{}{},
	}
	w, err := Open(name, opt, muxSink{m})
	if err != nil {
		return nil, err
	}
	m.w = w
	m.trees, _ = w.(treeKeeper)
	if m.oom = openOOMLogFor(opt); m.oom != nil {
		m.oomDone = make(chan struct{})
		go func() { defer close(m.oomDone); m.oom.keepDrained() }()
	}
	return m, nil
}

// muxSink is how the backend reaches the Mux.
type muxSink struct{ m *Mux }

func (s muxSink) Exited(ev Event) { s.m.deliver(ev) }
func (s muxSink) Execed(ev Event) { s.m.deliver(ev) }
func (s muxSink) Resync()         { s.m.resync() }

// Backend is the watcher behind the Mux.
func (m *Mux) Backend() Watcher { return m.w }

// Done is the backend's: closed once it ended, on its own or by Close.
func (m *Mux) Done() <-chan struct{} { return m.w.Done() }

// LastWake is the backend's: when its reader last woke.
func (m *Mux) LastWake() time.Duration { return m.w.LastWake() }

// EBPFStats are the ebpf backend's counters; false on another backend.
func (m *Mux) EBPFStats() (EBPFStats, bool) {
	w, ok := m.w.(*ebpfWatcher)
	if !ok {
		return EBPFStats{}, false
	}
	return w.Stats(), true
}

// KeepsTrees says whether the backend keeps process trees from events.
func (m *Mux) KeepsTrees() bool { return m.trees != nil }

// openOOMLogFor opens the kernel log where its pids are pcheck's (the
// initial pid namespace), or says once why OOM kills are not told apart.
func openOOMLogFor(opt Options) *oomLog {
	if ns, err := proc.PIDNamespace(opt.ProcRoot); err != nil || ns != proc.InitialPIDNamespace {
		opt.Logger.Info("the kernel log names host pids: OOM kills are told apart only by the ebpf backend here")
		return nil
	}
	l, err := openOOMLog()
	if err != nil {
		opt.Logger.Info("the kernel log cannot be read: OOM kills are told apart only by the ebpf backend", "err", err)
		return nil
	}
	return l
}

// Close stops the poller and the backend.
func (m *Mux) Close() error {
	m.mu.Lock()
	m.stopPollingLocked()
	m.mu.Unlock()
	err := m.w.Close() // no more deliveries, so no more reads of the log
	if m.oom != nil {
		m.oom.close()
		<-m.oomDone
	}
	return err
}

// View is one owner's share of the Mux. Attach its sink before the first
// Watch.
type View struct {
	m    *Mux
	sink Sink
}

// NewView returns a view; its owner, which is given the view, attaches
// itself as the sink.
func (m *Mux) NewView() *View { return &View{m: m} }

// Attach makes sink the view's receiver; call it once, before any watch.
func (v *View) Attach(sink Sink) {
	v.m.mu.Lock()
	v.sink = sink
	v.m.views[v] = struct{}{}
	v.m.mu.Unlock()
}

// Watch reports the exit of m's process to this view, and keeps its tree
// (its descendants as scanned, and what they fork from now on) on backends
// that keep trees. It never fails: a process the backend refuses is polled.
func (v *View) Watch(mt proc.Match) {
	m := v.m
	m.mu.Lock()
	if !slices.Contains(m.owners[mt.ID], v) {
		m.owners[mt.ID] = append(m.owners[mt.ID], v)
	}
	m.mu.Unlock()
	if err := m.w.Watch(mt.ID); err != nil {
		m.log.Error("the death watch refused a process: polling it instead", "pid", mt.ID.PID, "every", m.poll, "error", err)
		m.mu.Lock()
		m.polled[mt.ID] = struct{}{}
		m.startPollingLocked()
		m.mu.Unlock()
		return
	}
	if m.trees != nil {
		if err := m.trees.Track(mt.ID, mt.Descendants); err != nil {
			m.log.Warn("cannot track all of a process's descendants", "pid", mt.ID.PID, "error", err)
		}
	}
}

// Unwatch stops reporting id's exit to this view.
func (v *View) Unwatch(id proc.ID) {
	if v.m.drop(id, v) {
		_ = v.m.w.Unwatch(id)
	}
}

// Tree lists the processes of root's tree as the backend's events left it
// (root excluded); false when the backend keeps no trees or no longer
// trusts them: scan /proc instead.
func (v *View) Tree(root proc.ID) ([]proc.Process, bool) {
	if v.m.trees == nil {
		return nil, false
	}
	tree, err := v.m.trees.Tree(root)
	if err != nil {
		if !errors.Is(err, ErrNoTree) {
			v.m.log.Warn("cannot read a process tree", "root", root.PID, "error", err)
		}
		return nil, false
	}
	return tree, true
}

// Follow keeps root's tree from now on without watching root's exit,
// where the backend keeps trees: Tree(root) then lists what it started.
// It is best effort (nothing happens on pidfd and proc).
func (v *View) Follow(root proc.ID, ppid int) {
	if v.m.trees == nil {
		return
	}
	if err := v.m.trees.Follow(root, ppid); err != nil {
		v.m.log.Warn("cannot keep a process's tree", "pid", root.PID, "error", err)
	}
}

// KeepsTrees is the Mux's.
func (v *View) KeepsTrees() bool { return v.m.KeepsTrees() }

// WatchExec reports the execs of path to this view.
func (v *View) WatchExec(path string) error {
	m := v.m
	m.mu.Lock()
	first := len(m.execs[path]) == 0
	if !slices.Contains(m.execs[path], v) {
		m.execs[path] = append(m.execs[path], v)
	}
	m.mu.Unlock()
	if !first {
		return nil
	}
	err := m.w.WatchExec(path)
	if err != nil {
		m.mu.Lock()
		m.execs[path] = without(m.execs[path], v)
		m.mu.Unlock()
	}
	return err
}

// without is list less v, in a new array: deliver hands out m.execs'
// lists outside the lock (a thousand services of one executable: no copy
// per exec), so they are never changed in place, only appended to beyond
// what a reader holds.
func without(list []*View, v *View) []*View {
	return slices.DeleteFunc(slices.Clone(list), func(o *View) bool { return o == v })
}

// UnwatchExec undoes WatchExec.
func (v *View) UnwatchExec(path string) error {
	m := v.m
	m.mu.Lock()
	list := without(m.execs[path], v)
	last := len(list) == 0
	if last {
		delete(m.execs, path)
	} else {
		m.execs[path] = list
	}
	m.mu.Unlock()
	if last {
		return m.w.UnwatchExec(path)
	}
	return nil
}

// Close drops every watch of the view: its processes' exits and its
// executables' execs no longer concern anyone through it.
func (v *View) Close() {
	m := v.m
	m.mu.Lock()
	delete(m.views, v)
	var ids []proc.ID
	for id, owners := range m.owners {
		if slices.Contains(owners, v) {
			ids = append(ids, id)
		}
	}
	var paths []string
	for path, list := range m.execs {
		if slices.Contains(list, v) {
			paths = append(paths, path)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		v.Unwatch(id)
	}
	for _, p := range paths {
		_ = v.UnwatchExec(p)
	}
}

// drop removes v from id's owners and says whether none is left.
func (m *Mux) drop(id proc.ID, v *View) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	owners := slices.DeleteFunc(m.owners[id], func(o *View) bool { return o == v })
	if len(owners) > 0 {
		m.owners[id] = owners
		return false
	}
	delete(m.owners, id)
	delete(m.polled, id)
	return true
}

// deliver hands ev to its owners; the backend calls it.
func (m *Mux) deliver(ev Event) {
	if ev.Kind == Exit {
		ev = m.withOOM(ev)
	}
	m.mu.Lock()
	var to []*View
	switch ev.Kind {
	case Exit:
		to = m.owners[ev.ID]
		delete(m.owners, ev.ID)
		delete(m.polled, ev.ID)
	case Exec:
		to = m.execs[ev.Exe] // never changed in place: see without
	}
	m.mu.Unlock()
	if ev.Kind == Exec && len(to) > 1 {
		// Read once here rather than once per view: many services may
		// run one executable, told apart by their arguments.
		ev.Argv = readArgv(m.procRoot, ev.ID)
		ev.ArgLine = proc.ArgsLine(ev.Argv)
	}
	for _, v := range to {
		if ev.Kind == Exit {
			v.sink.Exited(ev)
		} else {
			v.sink.Execed(ev)
		}
	}
}

// withOOM names a SIGKILL death the kernel log reports as an OOM kill (or
// a death whose status polling missed), with its memory cgroup and rss.
// Where the backend's own event said "not OOM" (ebpf with mark_victim),
// the log is not read: a SIGKILL costs the reader nothing more.
func (m *Mux) withOOM(ev Event) Event {
	if m.oom == nil || (ev.Known && ev.Signal != int(syscall.SIGKILL)) {
		return ev
	}
	if ev.oomTold && ev.OOM == nil {
		return ev
	}
	kill, ok := m.oom.lookup(ev.ID)
	if !ok {
		return ev
	}
	ev.Known, ev.Signal, ev.ExitStatus = true, int(syscall.SIGKILL), 0
	ev.OOM, ev.Sender = &kill, nil
	return ev
}

// resync tells every view that events were lost.
func (m *Mux) resync() {
	m.mu.Lock()
	views := make([]*View, 0, len(m.views))
	for v := range m.views {
		views = append(views, v)
	}
	m.mu.Unlock()
	for _, v := range views {
		v.sink.Resync()
	}
}

// startPollingLocked runs the poller while something is polled. m.mu is
// held.
func (m *Mux) startPollingLocked() {
	if m.pollStop != nil {
		return
	}
	stop := make(chan struct{})
	m.pollStop = stop
	go m.pollLoop(stop)
}

func (m *Mux) stopPollingLocked() {
	if m.pollStop != nil {
		close(m.pollStop)
		m.pollStop = nil
	}
}

// pollLoop finds, within a poll interval, the deaths of processes the
// backend refused, by proc's rule; their status is known only while they
// are zombies.
func (m *Mux) pollLoop(stop chan struct{}) { every(m.poll, stop, m.pollOnce) }

func (m *Mux) pollOnce() {
	m.mu.Lock()
	ids := make([]proc.ID, 0, len(m.polled))
	for id := range m.polled {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		m.stopPollingLocked()
	}
	m.mu.Unlock()
	for _, id := range ids {
		if alive, ev := checkAlive(m.procRoot, id); !alive {
			m.mu.Lock()
			_, still := m.polled[id]
			m.mu.Unlock()
			if still {
				m.deliver(ev)
			}
		}
	}
}

// readArgv is id's command line, nil when it cannot be read or id's pid
// holds another process by now.
func readArgv(procRoot string, id proc.ID) []string {
	raw, err := os.ReadFile(procRoot + "/" + strconv.Itoa(id.PID) + "/cmdline")
	if err != nil || len(raw) == 0 {
		return nil
	}
	if st, err := proc.ReadStat(procRoot, id.PID); err != nil || st.StartTime != id.StartTime {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
}
