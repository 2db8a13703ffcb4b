// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/bpfload"
	"github.com/pwatch/pwatch/internal/coalesce"
	"github.com/pwatch/pwatch/pkg/proc"
)

func init() {
	register(backend{name: "ebpf", rank: 0, probe: probeEBPF, open: func(o Options, sink Sink) (Watcher, error) {
		w, err := loadEBPF(o, sink, 0)
		if err != nil {
			return nil, err
		}
		w.start()
		return w, nil
	}})
}

// lostCheckInterval bounds how long a lost event can go unnoticed when the
// ring buffer falls silent right after the loss.
const lostCheckInterval = ReaderWakeEvery

// EBPFStats are the ebpf backend's counters, for metrics (Mux.EBPFStats).
type EBPFStats struct {
	// Received counts events read from the ring buffer.
	Received uint64
	// Lost counts events the kernel dropped because the ring buffer was full.
	Lost uint64
	// Rescans counts re-checks of the watched set after losses.
	Rescans uint64
}

// probeEBPF asks the kernel for what the BPF programs need.
func probeEBPF(o Options) error {
	if err := sameBoottimeAsKernel(o.ProcRoot); err != nil {
		return err
	}
	checks := []struct {
		what  string
		probe func() error
	}{
		{"raw tracepoint programs", func() error { return features.HaveProgramType(ebpf.RawTracepoint) }},
		{"ring buffer maps", func() error { return features.HaveMapType(ebpf.RingBuf) }},
		{"bpf_get_current_task", func() error { return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnGetCurrentTask) }},
		{"bpf_probe_read_kernel", func() error { return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnProbeReadKernel) }},
		{"bpf_ringbuf_reserve", func() error { return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnRingbufReserve) }},
		{"kernel BTF (CO-RE)", func() error { _, err := btf.LoadKernelSpec(); return err }},
	}
	for _, c := range checks {
		err := c.probe()
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%s: %w (%w)", c.what, ErrNotSupported, err)
		}
		if err != nil {
			return fmt.Errorf("probing %s: %w", c.what, err)
		}
	}
	return nil
}

// sameBoottimeAsKernel refuses a time namespace that shifts boot time: the
// BPF program compares the kernel's own start times with /proc's, which
// such a namespace offsets, so it would take every watched exit for a
// reused pid's.
func sameBoottimeAsKernel(procRoot string) error {
	raw, err := os.ReadFile(procRoot + "/self/timens_offsets")
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel without time namespaces
	}
	if err != nil {
		return fmt.Errorf("reading time namespace offsets: %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "boottime" && (f[1] != "0" || f[2] != "0") {
			return fmt.Errorf("pcheck runs in a time namespace with a boot-time offset (%s s, %s ns): %w", f[1], f[2], ErrNotSupported)
		}
	}
	return nil
}

// ebpfWatcher is the ebpf backend: the kernel filters exits and execs against
// two maps and sends the matches through a ring buffer.
type ebpfWatcher struct {
	heartbeat
	*outlet
	procRoot string
	log      *slog.Logger
	objs     ebpfObjects
	links    []link.Link
	reader   *ringbuf.Reader
	readDone chan struct{}

	// mu guards the user-space copies of the maps, and keeps each kernel
	// map update in step with its copy.
	mu      sync.Mutex
	watched map[int]proc.ID         // by pid, as the kernel map
	exes    map[ebpfExeKey][]string // watched paths by executable
	exeKeys map[string]ebpfExeKey   // and back
	closed  bool                    // the kernel objects are gone
	// victimsSeen: mark_victim is attached, so an exit event says itself
	// whether the OOM killer chose it (set before the reader starts).
	victimsSeen bool

	// tables shares reads of the procs map among Tree's callers; objsMu
	// keeps the maps open while one is read (Close waits for it).
	tables     *coalesce.Reads[*treeIndex]
	objsMu     sync.RWMutex
	objsClosed bool
	// readTable's own, kept between reads (w.tables makes one at a
	// time): the batches' buffers, and the last read's size.
	batchKeys []uint32
	batchVals []ebpfTracked
	tableHint int

	received, rescans atomic.Uint64
	started           atomic.Bool
	lostSeen          uint64 // lost_events when last checked; reader goroutine only
	closeOnce         sync.Once
	closeErr          error
}

// loadEBPF loads and attaches the programs without reading events yet, so a
// test can let the ring buffer overflow. ringBytes 0 keeps the compiled size.
func loadEBPF(opt Options, sink Sink, ringBytes uint32) (_ *ebpfWatcher, err error) {
	opt = opt.withDefaults()
	spec, err := loadEbpf()
	if err != nil {
		return nil, err
	}
	if ringBytes != 0 {
		spec.Maps[ebpfMapEvents].MaxEntries = ringBytes
	}
	// Inside a pid namespace the programs number processes as it does.
	if err := bpfload.Prepare(spec, opt.ProcRoot); err != nil {
		return nil, err
	}
	// What pcheck forks roots a tree of its own (see Follow).
	if err := spec.Variables[ebpfVarSelfTgid].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("setting pcheck's pid: %w", err)
	}
	w := &ebpfWatcher{
		outlet:   newOutlet(sink),
		procRoot: opt.ProcRoot,
		log:      opt.Logger.With("watcher", "ebpf"),
		readDone: make(chan struct{}),
		watched:  map[int]proc.ID{},
		exes:     map[ebpfExeKey][]string{},
		exeKeys:  map[string]ebpfExeKey{},
	}
	w.tables = coalesce.New(w.readTable, 0)
	if err := spec.LoadAndAssign(&w.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading BPF programs: %+v", ve)
		}
		return nil, fmt.Errorf("loading BPF objects: %w", err)
	}
	defer func() {
		if err != nil {
			w.closeKernelSide()
		}
	}()
	if err := w.attach(); err != nil {
		return nil, err
	}
	if w.reader, err = ringbuf.NewReader(w.objs.Events); err != nil {
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	return w, nil
}

// attach hooks the programs to the scheduler's exit and exec tracepoints.
func (w *ebpfWatcher) attach() error {
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_exit", w.objs.WatchedExit},
		{"sched_process_fork", w.objs.TrackedFork},
		{"sched_process_exec", w.objs.WatchedExec},
	} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: tp.prog})
		if err != nil {
			return fmt.Errorf("attaching to raw tracepoint %s: %w", tp.name, err)
		}
		w.links = append(w.links, l)
	}
	// Why a process died is a detail: a kernel without these tracepoints
	// loses only that, said once.
	for _, tp := range []struct {
		name, detail string
		prog         *ebpf.Program
	}{
		{"mark_victim", "OOM kills are not told apart from other SIGKILLs but by the kernel log", w.objs.OomVictim},
		{"signal_generate", "the sender of a fatal signal is not named", w.objs.SignalSent},
	} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: tp.prog})
		if err != nil {
			w.log.Warn("a tracepoint for the cause of deaths is missing: "+tp.detail, "tracepoint", tp.name, "err", err)
			continue
		}
		if tp.name == "mark_victim" {
			w.victimsSeen = true
		}
		w.links = append(w.links, l)
	}
	return nil
}

// detach unhooks the programs; the maps and the watched set stay.
func (w *ebpfWatcher) detach() {
	for _, l := range w.links {
		if err := l.Close(); err != nil {
			w.log.Warn("detaching a BPF program", "err", err)
		}
	}
	w.links = nil
}

// start begins reading events.
func (w *ebpfWatcher) start() {
	w.started.Store(true)
	go w.read()
}

func (w *ebpfWatcher) Name() string { return "ebpf" }

// Stats returns the counters.
func (w *ebpfWatcher) Stats() EBPFStats {
	s := EBPFStats{Received: w.received.Load(), Rescans: w.rescans.Load()}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		s.Lost = w.lost()
	}
	return s
}

func (w *ebpfWatcher) Watch(id proc.ID) error {
	if id.PID <= 0 || id.PID > math.MaxInt32 {
		return fmt.Errorf("watch %v: invalid pid", id)
	}
	w.mu.Lock()
	cur, had := w.watched[id.PID]
	w.mu.Unlock()
	if had && cur != id {
		// One pid, two identities: at most one of them is alive.
		alive, ev := checkAlive(w.procRoot, cur)
		if alive {
			w.push(exitEvent(id, false, 0))
			return nil
		}
		w.report(ev)
	}
	st, err := proc.ReadStat(w.procRoot, id.PID)
	if err != nil || st.StartTime != id.StartTime {
		alive, ev := checkAlive(w.procRoot, id)
		if !alive {
			w.push(ev)
			return nil
		}
	}
	// It becomes the root of its own tree, even if a tree held it.
	entry := ebpfTracked{StartTime: id.StartTime, RootStart: id.StartTime, Root: uint32(id.PID), Ppid: uint32(st.PPID), Flags: uint32(ebpfProcFlagPROC_WATCHED)}
	w.mu.Lock()
	err = w.objs.Procs.Put(uint32(id.PID), entry)
	if err == nil {
		w.watched[id.PID] = id
	}
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("watch %v: %w", id, err)
	}
	// It may have died before the map held it: the kernel would not tell.
	if alive, ev := checkAlive(w.procRoot, id); !alive {
		w.report(ev)
	}
	return nil
}

func (w *ebpfWatcher) Unwatch(id proc.ID) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.forgetLocked(id)
}

// forgetLocked stops reporting id's exit, if it is watched; the kernel
// keeps its tree while it lives.
func (w *ebpfWatcher) forgetLocked(id proc.ID) error {
	if w.watched[id.PID] != id {
		return nil
	}
	delete(w.watched, id.PID)
	var entry ebpfTracked
	if err := w.objs.Procs.Lookup(uint32(id.PID), &entry); err != nil || entry.StartTime != id.StartTime {
		return nil // the kernel deleted it when it reported the exit
	}
	entry.Flags &^= uint32(ebpfProcFlagPROC_WATCHED)
	// UpdateExist: an entry the kernel deletes meanwhile stays deleted.
	if err := w.objs.Procs.Update(uint32(id.PID), entry, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatch %v: %w", id, err)
	}
	return nil
}

// Track puts descendants into root's tree in the kernel's map; from then on
// the kernel adds what they fork. Another service's watched roots are left
// alone.
func (w *ebpfWatcher) Track(root proc.ID, descendants []proc.Process) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, d := range descendants {
		if d.ID.PID <= 0 || d.ID.PID > math.MaxInt32 {
			continue
		}
		if cur, ok := w.watched[d.ID.PID]; ok && cur == d.ID {
			continue
		}
		entry := ebpfTracked{StartTime: d.ID.StartTime, RootStart: root.StartTime, Root: uint32(root.PID), Ppid: uint32(d.PPID)}
		if err := w.objs.Procs.Put(uint32(d.ID.PID), entry); err != nil {
			errs = append(errs, fmt.Errorf("track %v under %v: %w", d.ID, root, err))
		}
	}
	return errors.Join(errs...)
}

// Follow puts root in the kernel's map as the root of an unwatched tree,
// unless a tree holds it already: the kernel then adds what it forks.
func (w *ebpfWatcher) Follow(root proc.ID, ppid int) error {
	if root.PID <= 0 || root.PID > math.MaxInt32 {
		return fmt.Errorf("follow %v: invalid pid", root)
	}
	entry := ebpfTracked{StartTime: root.StartTime, RootStart: root.StartTime, Root: uint32(root.PID), Ppid: uint32(ppid)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrNoTree
	}
	err := w.objs.Procs.Update(uint32(root.PID), entry, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("follow %v: %w", root, err)
	}
	return nil
}

// Tree is root's tree from a read of the kernel's map begun after the
// call. The reads are shared by every caller asking meanwhile (each
// supervisor awaiting its restart asks every ScanInterval) and made in
// batches outside w.mu: a tree costs a share of one read, never the
// reader's time.
func (w *ebpfWatcher) Tree(root proc.ID) ([]proc.Process, error) {
	index, err := w.tables.Fresh()
	if err != nil {
		return nil, err
	}
	return index.tree(root), nil
}

// treeBatch is how many entries one syscall reads.
const treeBatch = 4096

// readTable reads the kernel's map of tracked processes, in batches, and
// indexes it.
func (w *ebpfWatcher) readTable() (*treeIndex, error) {
	w.objsMu.RLock()
	defer w.objsMu.RUnlock()
	if w.objsClosed {
		return nil, ErrNoTree
	}
	if n := w.untrackedForks(); n != 0 {
		return nil, fmt.Errorf("%w: the kernel's table was full for %d forks", ErrNoTree, n)
	}
	table := make(treeTable, w.tableHint)
	add := func(pid uint32, e ebpfTracked) {
		table[int(pid)] = trackedProc{
			id:      proc.ID{PID: int(pid), StartTime: e.StartTime},
			ppid:    int(e.Ppid),
			root:    proc.ID{PID: int(e.Root), StartTime: e.RootStart},
			watched: e.Flags&uint32(ebpfProcFlagPROC_WATCHED) != 0,
		}
	}
	if w.batchKeys == nil {
		w.batchKeys, w.batchVals = make([]uint32, treeBatch), make([]ebpfTracked, treeBatch)
	}
	keys, vals := w.batchKeys, w.batchVals
	var cursor ebpf.MapBatchCursor
	for {
		n, err := w.objs.Procs.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			add(keys[i], vals[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			w.tableHint = len(table)
			return indexTrees(table), nil // read to the end
		case errors.Is(err, ebpf.ErrNotSupported):
			clear(table)
			if err := w.iterateTable(add); err != nil {
				return nil, err
			}
			return indexTrees(table), nil
		case err != nil:
			return nil, fmt.Errorf("%w: reading the kernel's table: %w", ErrNoTree, err)
		}
	}
}

// iterateTable reads the map entry by entry: kernels without batch
// lookups of hash maps (before 5.6).
func (w *ebpfWatcher) iterateTable(add func(uint32, ebpfTracked)) error {
	var pid uint32
	var e ebpfTracked
	it := w.objs.Procs.Iterate()
	for it.Next(&pid, &e) {
		add(pid, e)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("%w: reading the kernel's table: %w", ErrNoTree, err)
	}
	return nil
}

// untrackedForks reads how many forks the full map could not hold.
func (w *ebpfWatcher) untrackedForks() uint64 {
	var n uint64
	if err := w.objs.UntrackedForks.Get(&n); err != nil {
		w.log.Warn("reading the untracked-fork counter", "err", err)
	}
	return n
}

// report sends an Exit event if its process is still watched, so each watch
// reports once whichever path (kernel event, re-check, rescan) sees it first.
func (w *ebpfWatcher) report(ev Event) { w.reportFrom(ev, false) }

// reportFrom is report; byKernel says the kernel reported the exit, and
// deleted the map's entry itself: nothing to clean up there.
func (w *ebpfWatcher) reportFrom(ev Event, byKernel bool) {
	w.mu.Lock()
	watched := w.watched[ev.ID.PID] == ev.ID
	if watched && byKernel {
		delete(w.watched, ev.ID.PID)
	} else if watched {
		delete(w.watched, ev.ID.PID)
		// Found dead here rather than by the kernel (it died before the
		// map held it, or its event was lost): its entry must go too.
		var entry ebpfTracked
		if err := w.objs.Procs.Lookup(uint32(ev.ID.PID), &entry); err == nil && entry.StartTime == ev.ID.StartTime {
			if err := w.objs.Procs.Delete(uint32(ev.ID.PID)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				w.log.Warn("cannot remove a dead process from the BPF map", "id", ev.ID, "err", err)
			}
		}
	}
	w.mu.Unlock()
	if watched {
		w.push(ev)
	}
}

func (w *ebpfWatcher) WatchExec(path string) error {
	if err := checkExePath(path); err != nil {
		return err
	}
	key, err := exeKeyOf(path)
	if err != nil {
		return fmt.Errorf("watch exec %s: %w", path, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.exeKeys[path]; ok {
		return nil
	}
	if err := w.objs.WatchedExes.Put(key, uint8(1)); err != nil {
		return fmt.Errorf("watch exec %s: %w", path, err)
	}
	w.exeKeys[path] = key
	w.exes[key] = append(w.exes[key], path)
	return nil
}

func (w *ebpfWatcher) UnwatchExec(path string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	key, ok := w.exeKeys[path]
	if !ok {
		return nil
	}
	delete(w.exeKeys, path)
	var rest []string
	for _, p := range w.exes[key] {
		if p != path {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		w.exes[key] = rest
		return nil
	}
	delete(w.exes, key)
	if err := w.objs.WatchedExes.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatch exec %s: %w", path, err)
	}
	return nil
}

// exeKeyOf names path's file as the BPF program sees it.
func exeKeyOf(path string) (ebpfExeKey, error) {
	k, err := statKey(path)
	if err != nil {
		return ebpfExeKey{}, err
	}
	// The kernel's internal dev_t is MKDEV: major << 20 | minor.
	return ebpfExeKey{Dev: unix.Major(k.dev)<<20 | unix.Minor(k.dev), Ino: k.ino}, nil
}

// maxReadFailures is how many ring-buffer read errors in a row mean the
// reader is broken for good.
const maxReadFailures = 10

// read turns ring-buffer records into events until Close. It blocks in the
// kernel while the ring is empty. Losses happen only while it is full, so
// the lost counter is checked each time it has been drained, and at least
// every lostCheckInterval in case the count landed just after a drain.
func (w *ebpfWatcher) read() {
	defer close(w.readDone)
	var rec ringbuf.Record
	deadline := time.Now().Add(lostCheckInterval)
	failures := 0
	for {
		w.beat()
		w.reader.SetDeadline(deadline)
		err := w.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, ringbuf.ErrClosed):
			return
		case errors.Is(err, os.ErrDeadlineExceeded): // drained, or idle
			w.rescanIfLost()
			deadline = time.Now().Add(lostCheckInterval)
		case err != nil:
			w.log.Error("reading the BPF ring buffer", "err", err)
			if failures++; failures >= maxReadFailures {
				w.log.Error("the BPF ring buffer cannot be read: no more exits will be seen")
				w.outlet.close() // Done: the consumer must know
				return
			}
		default:
			failures = 0
			w.received.Add(1)
			w.handle(rec.RawSample)
			// A past deadline reads on without waiting, then reports the
			// ring drained.
			deadline = time.Now()
		}
	}
}

func (w *ebpfWatcher) handle(raw []byte) {
	var e ebpfEvent
	if _, err := binary.Decode(raw, binary.NativeEndian, &e); err != nil {
		w.log.Error("malformed BPF event", "len", len(raw), "err", err)
		return
	}
	id := proc.ID{PID: int(e.Pid), StartTime: e.StartTime}
	at := time.Duration(e.AtNs)
	switch ebpfEventKind(e.Kind) {
	case ebpfEventKindEVENT_EXIT:
		ev := exitEvent(id, true, int(e.WaitStatus))
		ev.At = at
		ev.oomTold = w.victimsSeen
		switch {
		case e.Oom != 0:
			ev.OOM = &OOMKill{}
		case e.SignalSent != 0 && int(e.SignalSent) == ev.Signal:
			ev.Sender = &Sender{PID: int(e.SenderPid), UID: int(e.SenderUid), Comm: cString(e.SenderComm[:])}
		}
		w.reportFrom(ev, true)
	case ebpfEventKindEVENT_EXEC:
		w.mu.Lock()
		paths := w.exes[e.Exe]
		w.mu.Unlock()
		for _, p := range paths {
			w.push(Event{Kind: Exec, ID: id, Exe: p, PPID: int(e.Ppid), At: at})
		}
	default:
		w.log.Error("unknown BPF event kind", "kind", e.Kind)
	}
}

// cString is a kernel comm: NUL-terminated, at most 16 bytes.
func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// lost reads the kernel's count of dropped events.
func (w *ebpfWatcher) lost() uint64 {
	var n uint64
	if err := w.objs.LostEvents.Get(&n); err != nil {
		w.log.Warn("reading the lost-event counter", "err", err)
	}
	return n
}

// rescanIfLost re-checks every watched process through /proc when the
// kernel dropped events since the last look.
func (w *ebpfWatcher) rescanIfLost() {
	n := w.lost()
	if n == w.lostSeen {
		return
	}
	w.log.Warn("BPF ring buffer overflowed; re-checking watched processes", "lost", n-w.lostSeen)
	w.lostSeen = n
	w.rescan()
	w.outlet.resync() // lost exec events: what a supervisor waits for may have come
}

// rescan reports every watched process that is no longer alive.
func (w *ebpfWatcher) rescan() {
	w.rescans.Add(1)
	w.mu.Lock()
	ids := make([]proc.ID, 0, len(w.watched))
	for _, id := range w.watched {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		if alive, ev := checkAlive(w.procRoot, id); !alive {
			w.report(ev)
		}
	}
}

// Close detaches the programs, stops the reader and ends the outlet.
func (w *ebpfWatcher) Close() error {
	w.closeOnce.Do(func() {
		w.closeErr = w.reader.Close()
		if w.started.Load() {
			<-w.readDone // it may still touch the maps
		}
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.objsMu.Lock() // no read of the maps under way
		w.objsClosed = true
		w.objsMu.Unlock()
		w.closeKernelSide()
		w.outlet.close()
	})
	return w.closeErr
}

func (w *ebpfWatcher) closeKernelSide() {
	w.detach()
	if err := w.objs.Close(); err != nil {
		w.log.Warn("closing BPF objects", "err", err)
	}
}
