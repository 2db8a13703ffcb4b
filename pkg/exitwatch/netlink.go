// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/proc"
)

// The netlink backend listens to the kernel's proc connector, which reports
// every thread's exit (with exit_code) and every exec on the host; events
// are filtered in user space against the watched identities. A thread's
// exit ends the watch only once every thread of its group has begun to exit
// (groupExiting), so the Exit is reported when the last thread enters
// do_exit: /proc may show the process for some microseconds more. When the
// socket overruns (ENOBUFS) events are lost, so every watched identity is
// checked again through /proc. Needs CAP_NET_ADMIN.
func init() {
	register(backend{name: "netlink", rank: 1, probe: probeNetlink, open: openNetlink})
}

const (
	procCnMcastListen = netlink.PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2
	// netlinkRcvBuf absorbs bursts (a thousand exits at once is ~100 KiB).
	netlinkRcvBuf = 8 << 20
	// netlinkAckTimeout bounds the wait for the kernel's answer to LISTEN.
	netlinkAckTimeout = 2 * time.Second
)

func probeNetlink(o Options) error {
	if err := hostPIDNamespace(o); err != nil {
		return err
	}
	s, err := dialProcConnector()
	if err != nil {
		return err
	}
	sendMcastOp(s, procCnMcastIgnore)
	s.Close()
	return nil
}

// dialProcConnector opens a connector socket and subscribes to process
// events, waiting for the kernel's acknowledgement so that a refusal is an
// error now, not silence later. Only a kernel without the connector or
// without process events is ErrNotSupported; EPERM is a real error.
func dialProcConnector() (*nl.NetlinkSocket, error) {
	s, err := nl.Subscribe(unix.NETLINK_CONNECTOR, netlink.CN_IDX_PROC)
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		return nil, fmt.Errorf("netlink connector: %w (%w)", ErrNotSupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("netlink connector: %w", err)
	}
	if err := s.SetReceiveBufferSize(netlinkRcvBuf, true); err != nil {
		// SO_RCVBUFFORCE needs CAP_NET_ADMIN; take what the limit allows.
		_ = s.SetReceiveBufferSize(netlinkRcvBuf, false)
	}
	if err := sendMcastOp(s, procCnMcastListen); err != nil {
		s.Close()
		return nil, fmt.Errorf("proc connector listen: %w", err)
	}
	if err := awaitAck(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func sendMcastOp(s *nl.NetlinkSocket, op uint32) error {
	req := nl.NetlinkRequest{NlMsghdr: unix.NlMsghdr{Type: unix.NLMSG_DONE}}
	req.AddData(nl.NewCnMsg(netlink.CN_IDX_PROC, netlink.CN_VAL_PROC, op))
	return s.Send(&req)
}

// awaitAck reads until the PROC_EVENT_NONE acknowledgement of LISTEN.
// Process events that arrive first concern nothing watched yet.
func awaitAck(s *nl.NetlinkSocket) error {
	tv := unix.NsecToTimeval(netlinkAckTimeout.Nanoseconds())
	if err := s.SetReceiveTimeout(&tv); err != nil {
		return err
	}
	deadline := time.Now().Add(netlinkAckTimeout)
	for time.Now().Before(deadline) {
		msgs, from, err := s.Receive()
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return fmt.Errorf("proc connector: %w", err)
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		for _, m := range msgs {
			ev, ok := parseProcEvent(m.Data)
			if !ok || ev.what != netlink.PROC_EVENT_NONE {
				continue
			}
			if ev.ackErr != 0 {
				return fmt.Errorf("proc connector refused to listen: %w", unix.Errno(ev.ackErr))
			}
			return s.SetReceiveTimeout(&unix.Timeval{})
		}
	}
	return fmt.Errorf("proc connector: no answer within %v, kernel without CONFIG_PROC_EVENTS: %w", netlinkAckTimeout, ErrNotSupported)
}

// procEvent is the part of a proc connector message we use.
type procEvent struct {
	what      uint32
	pid, tgid int
	exitCode  int // wait(2)-style status of the exiting thread
	childPid  int // fork: the new task
	childTgid int
	at        time.Duration // when the kernel sent it, CLOCK_MONOTONIC
	ackErr    uint32
}

// The layout of a proc connector message after its nlmsghdr: a cn_msg
// (include/uapi/linux/connector.h), then a proc_event
// (include/uapi/linux/cn_proc.h) whose event data starts at cnData; all in
// host byte order.
const (
	cnIdxOff   = 0  // cn_msg.id.idx
	cnValOff   = 4  // cn_msg.id.val
	cnWhatOff  = 20 // proc_event.what
	cnStampOff = 28 // proc_event.timestamp_ns
	cnData     = 36 // proc_event.event_data
)

// parseProcEvent decodes a cn_msg carrying a proc_event, by offsets: it
// runs for every event on the host, so it neither reflects nor allocates.
func parseProcEvent(b []byte) (procEvent, bool) {
	if len(b) < cnData {
		return procEvent{}, false
	}
	u32 := func(off int) int { return int(binary.NativeEndian.Uint32(b[off:])) }
	if u32(cnIdxOff) != netlink.CN_IDX_PROC || u32(cnValOff) != netlink.CN_VAL_PROC {
		return procEvent{}, false
	}
	ev := procEvent{what: uint32(u32(cnWhatOff)), at: time.Duration(binary.NativeEndian.Uint64(b[cnStampOff:]))}
	// The fields read: ack error; exit pid, tgid, code; fork parent pid,
	// tgid, child pid, tgid; exec pid, tgid.
	var fields int
	switch ev.what {
	case netlink.PROC_EVENT_NONE:
		fields = 1
	case netlink.PROC_EVENT_EXIT:
		fields = 3
	case netlink.PROC_EVENT_FORK:
		fields = 4
	case netlink.PROC_EVENT_EXEC:
		fields = 2
	}
	if len(b) < cnData+4*fields {
		return procEvent{}, false
	}
	d := func(i int) int { return u32(cnData + 4*i) }
	switch ev.what {
	case netlink.PROC_EVENT_NONE:
		ev.ackErr = uint32(d(0))
	case netlink.PROC_EVENT_EXIT:
		ev.pid, ev.tgid, ev.exitCode = d(0), d(1), d(2)
	case netlink.PROC_EVENT_FORK:
		ev.pid, ev.tgid, ev.childPid, ev.childTgid = d(0), d(1), d(2), d(3)
	case netlink.PROC_EVENT_EXEC:
		ev.pid, ev.tgid = d(0), d(1)
	}
	return ev, true
}

type netlinkWatcher struct {
	heartbeat
	*outlet
	opt  Options
	sock *nl.NetlinkSocket
	done chan struct{}

	mu sync.Mutex
	// watched maps a pid to the start times watched under it (normally one;
	// two only while a reused pid's old identity awaits its report).
	watched map[int]map[uint64]struct{}
	exes    exePaths
	// exeKeys names the watched executables' files as last stat'ed (at
	// WatchExec, or when a process ran a watched path's new file), so an
	// exec costs one stat whatever the number of watched paths.
	exeKeys map[fileKey]string
	trees   treeTable
	// losses counts overruns; a tree is trusted only when its root was
	// tracked (by a scan) since the last one, as lost forks are not in it.
	losses    int
	trackedAt map[proc.ID]int
	self      int // pcheck's pid: its children root trees of their own
	closed    bool
}

// hostPIDNamespace refuses a pid namespace: the connector numbers
// processes as the initial one does, which a namespace's own /proc does
// not know.
func hostPIDNamespace(o Options) error {
	ns, err := proc.PIDNamespace(o.ProcRoot)
	if err != nil {
		return err
	}
	if ns != proc.InitialPIDNamespace {
		return fmt.Errorf("pcheck runs in a pid namespace (inode %d), and the proc connector reports the host's pids: %w", ns, ErrNotSupported)
	}
	return nil
}

func openNetlink(opt Options, sink Sink) (Watcher, error) {
	if err := hostPIDNamespace(opt); err != nil {
		return nil, err
	}
	s, err := dialProcConnector()
	if err != nil {
		return nil, err
	}
	w := &netlinkWatcher{
		outlet:    newOutlet(sink),
		opt:       opt,
		sock:      s,
		done:      make(chan struct{}),
		watched:   map[int]map[uint64]struct{}{},
		exes:      exePaths{},
		exeKeys:   map[fileKey]string{},
		trees:     treeTable{},
		trackedAt: map[proc.ID]int{},
		self:      os.Getpid(),
	}
	// Events it never uses stay in the kernel; without the filter (which
	// every kernel with the connector has) they only cost more wakes.
	if err := attachCnFilter(s.GetFd()); err != nil {
		opt.Logger.Warn("netlink watcher: every host event will wake pcheck", "err", err)
	}
	// The reader wakes at least every ReaderWakeEvery (EAGAIN), for the watchdog.
	tv := unix.NsecToTimeval(ReaderWakeEvery.Nanoseconds())
	if err := s.SetReceiveTimeout(&tv); err != nil {
		s.Close()
		return nil, fmt.Errorf("netlink connector: %w", err)
	}
	go w.loop()
	return w, nil
}

func (w *netlinkWatcher) Name() string { return "netlink" }

func (w *netlinkWatcher) Watch(id proc.ID) error {
	if err := validID(id); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watched[id.PID][id.StartTime]; ok {
		return nil
	}
	// Events read from here on are matched against id (w.mu is held, so
	// none is handled before the check below). An exit that happened
	// before is found now: gone, reused, zombie, or all threads exiting.
	exiting, err := groupExiting(w.opt.ProcRoot, id)
	if err != nil {
		return fmt.Errorf("watch %v: %w", id, err)
	}
	if exiting {
		w.push(w.exitNow(id))
		return nil
	}
	if w.watched[id.PID] == nil {
		w.watched[id.PID] = map[uint64]struct{}{}
	}
	w.watched[id.PID][id.StartTime] = struct{}{}
	if st, err := proc.ReadStat(w.opt.ProcRoot, id.PID); err == nil && st.StartTime == id.StartTime {
		w.trees.watch(id, st.PPID)
	}
	return nil
}

// Track puts descendants into root's tree; fork events add the rest.
func (w *netlinkWatcher) Track(root proc.ID, descendants []proc.Process) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trees.track(root, descendants)
	w.trackedAt[root] = w.losses
	return nil
}

// Follow starts an unwatched tree at root; fork events fill it.
func (w *netlinkWatcher) Follow(root proc.ID, ppid int) error {
	if err := validID(root); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trees.execed(root, ppid)
	w.trackedAt[root] = w.losses
	return nil
}

// Tree is root's tree as fork and exit events left it; after lost events,
// only once a scan tracked root again.
func (w *netlinkWatcher) Tree(root proc.ID) ([]proc.Process, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.trackedAt[root]; w.losses > 0 && (!ok || at < w.losses) {
		return nil, fmt.Errorf("%w: fork events were lost since it was last scanned", ErrNoTree)
	}
	return treeOf(w.trees, root), nil
}

// exitNow is the Exit of an identity found exited without its exit event:
// with the status while it is a zombie, else unknown.
func (w *netlinkWatcher) exitNow(id proc.ID) Event {
	if alive, ev := checkAlive(w.opt.ProcRoot, id); !alive {
		return ev
	}
	return exitEvent(id, false, 0) // still inside do_exit
}

func (w *netlinkWatcher) Unwatch(id proc.ID) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget(id)
	w.trees.unwatch(id)
	delete(w.trackedAt, id)
	return nil
}

// forget drops one watch; w.mu is held.
func (w *netlinkWatcher) forget(id proc.ID) {
	delete(w.watched[id.PID], id.StartTime)
	if len(w.watched[id.PID]) == 0 {
		delete(w.watched, id.PID)
	}
}

func (w *netlinkWatcher) WatchExec(path string) error {
	if err := checkExePath(path); err != nil {
		return err
	}
	w.mu.Lock()
	if _, ok := w.exes[path]; !ok {
		w.exes[path] = monotonicNow()
		if k, err := statKey(path); err == nil {
			w.exeKeys[k] = path
		}
	}
	w.mu.Unlock()
	return nil
}

func (w *netlinkWatcher) UnwatchExec(path string) error {
	w.mu.Lock()
	delete(w.exes, path)
	maps.DeleteFunc(w.exeKeys, func(_ fileKey, p string) bool { return p == path })
	w.mu.Unlock()
	return nil
}

func (w *netlinkWatcher) loop() {
	defer close(w.done)
	for {
		w.beat()
		msgs, from, err := w.sock.Receive()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // the ReaderWakeEvery wake-up
		}
		if errors.Is(err, unix.ENOBUFS) {
			w.overrun()
			continue
		}
		if err != nil {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if !closed {
				w.opt.Logger.Error("netlink watcher: receive failed, no more exits will be seen", "err", err)
				w.outlet.close() // Done: the consumer must know
			}
			return
		}
		if from.Pid != nl.PidKernel {
			continue // only the kernel speaks for processes
		}
		for _, m := range msgs {
			if ev, ok := parseProcEvent(m.Data); ok {
				w.handle(ev)
			}
		}
	}
}

func (w *netlinkWatcher) handle(ev procEvent) {
	switch ev.what {
	case netlink.PROC_EVENT_EXIT:
		w.threadExited(ev)
	case netlink.PROC_EVENT_FORK:
		w.forked(ev)
	case netlink.PROC_EVENT_EXEC:
		w.execed(ev)
	}
}

// forked tracks a new process (not a thread) forked by a tracked one.
func (w *netlinkWatcher) forked(ev procEvent) {
	if ev.childPid != ev.childTgid {
		return // a thread
	}
	own := ev.tgid == w.self
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.trees[ev.tgid]; !ok && !own {
		return
	}
	// Its parent may have died since (the child is reparented), so only
	// its start time is read: one read per fork inside a tree.
	st, err := proc.ReadStat(w.opt.ProcRoot, ev.childTgid)
	if err != nil {
		return // exited already
	}
	child := proc.ID{PID: ev.childTgid, StartTime: st.StartTime}
	if own { // pcheck's own child roots its tree (treeKeeper.Follow)
		w.trees.execed(child, ev.tgid)
		if w.losses > 0 { // (at 0 an entry says what none says)
			w.trackedAt[child] = w.losses
		}
		return
	}
	w.trees.forked(ev.tgid, child)
}

// threadExited decides whether the exit of thread ev.pid ends its watched
// group. The exit_code of the thread that ends the group is the group's
// status (an exit_group or fatal signal gives every thread the group's
// code; a leader that exited first left the decision to the last thread).
func (w *netlinkWatcher) threadExited(ev procEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.trees[ev.tgid]; ok && !t.watched {
		if exiting, err := groupExiting(w.opt.ProcRoot, t.id); err == nil && exiting {
			w.trees.exited(t.id)
			delete(w.trackedAt, t.id) // its tree ends with it
		}
	}
	for start := range w.watched[ev.tgid] {
		w.decideExit(proc.ID{PID: ev.tgid, StartTime: start}, ev.exitCode, 0)
	}
}

// exitRereads bounds how often an exit whose group could not be read is
// looked at again (10 ms after, then twice as long each time: 2.5 s in all).
const exitRereads = 8

// decideExit ends the watch of id if its group has exited; w.mu is held.
// A group that cannot be read now is read again a little later: no other
// event would tell of this exit, so a failed read must not lose it.
func (w *netlinkWatcher) decideExit(id proc.ID, exitCode, rereads int) {
	exiting, err := groupExiting(w.opt.ProcRoot, id)
	if err != nil {
		if rereads == exitRereads {
			w.opt.Logger.Warn("netlink watcher: cannot read the exiting group", "id", id, "err", err)
			return
		}
		time.AfterFunc(10*time.Millisecond<<rereads, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if _, ok := w.watched[id.PID][id.StartTime]; ok && !w.closed {
				w.decideExit(id, exitCode, rereads+1)
			}
		})
		return
	}
	if !exiting {
		return // another thread runs on; its exit will come
	}
	w.forget(id)
	w.trees.exited(id)
	delete(w.trackedAt, id) // its tree ends with it
	w.push(exitEvent(id, !pidReused(w.opt.ProcRoot, id), exitCode))
}

// pidReused tells whether id's pid now holds another process, whose
// thread's exit code must not be taken for id's.
func pidReused(procRoot string, id proc.ID) bool {
	st, err := proc.ReadStat(procRoot, id.PID)
	return err == nil && st.StartTime != id.StartTime
}

func (w *netlinkWatcher) execed(ev procEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.exes) == 0 {
		return
	}
	path, ok := w.execPath(ev.tgid)
	if !ok || ev.at < w.exes[path] {
		return // not watched, or an exec from before the watch still queued
	}
	st, err := proc.ReadStat(w.opt.ProcRoot, ev.tgid)
	if err != nil {
		return // exited already
	}
	id := proc.ID{PID: ev.tgid, StartTime: st.StartTime}
	w.trees.execed(id, st.PPID)
	w.push(Event{Kind: Exec, ID: id, Exe: path, PPID: st.PPID, At: monotonicNow()})
}

// execPath is the watched path whose file pid runs. A file not known by
// its key is looked up by the path the kernel gives it: a watched path
// whose file was replaced (a new inode), or created since its watch, is
// stat'ed again, that one only. w.mu is held.
func (w *netlinkWatcher) execPath(pid int) (string, bool) {
	exe := w.opt.ProcRoot + "/" + strconv.Itoa(pid) + "/exe"
	k, err := statKey(exe)
	if err != nil {
		return "", false // a kernel thread, or gone
	}
	if path, ok := w.exeKeys[k]; ok {
		return path, true
	}
	target, err := os.Readlink(exe)
	if _, watched := w.exes[target]; err != nil || !watched {
		return "", false
	}
	if now, err := statKey(target); err != nil || now != k {
		return "", false // replaced again meanwhile: its own exec will tell
	}
	maps.DeleteFunc(w.exeKeys, func(_ fileKey, p string) bool { return p == target })
	w.exeKeys[k] = target
	return target, true
}

// overrun handles lost events: every watched identity is checked through
// /proc. Lost exec events cannot be recovered.
func (w *netlinkWatcher) overrun() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.opt.Logger.Warn("netlink watcher: socket overrun, events lost; rescanning watched processes")
	for pid, starts := range w.watched {
		for start := range starts {
			id := proc.ID{PID: pid, StartTime: start}
			if exiting, err := groupExiting(w.opt.ProcRoot, id); err == nil && exiting {
				w.forget(id)
				w.push(w.exitNow(id))
			}
		}
	}
	// Lost forks and exits: drop the exited from the trees; a lost fork's
	// child is missing from its tree, so trees are not trusted until a scan
	// tracks their roots again (Resync asks for one).
	w.losses++
	for _, t := range w.trees {
		if alive, _ := checkAlive(w.opt.ProcRoot, t.id); !alive {
			w.trees.exited(t.id)
			delete(w.trackedAt, t.id) // its tree ends with it
		}
	}
	w.outlet.resync()
}

func (w *netlinkWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	// Tell the kernel one listener fewer, so it can stop building events.
	_ = sendMcastOp(w.sock, procCnMcastIgnore)
	w.sock.Close()
	<-w.done
	w.outlet.close()
	return nil
}
