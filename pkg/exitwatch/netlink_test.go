// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// TestNetlinkOverrunRescans: when the socket overflowed (ENOBUFS) the
// exit events are lost; the rescan must still report every dead watched
// identity, once, and leave the living ones watched.
func TestNetlinkOverrunRescans(t *testing.T) {
	testpriv.Root(t) // to read a zombie's exit code from /proc
	// No socket: the exits below are never seen as events, as in an overrun.
	sink := newSinkLog()
	w := &netlinkWatcher{
		outlet:    newOutlet(sink),
		opt:       Options{}.withDefaults(),
		watched:   map[int]map[uint64]struct{}{},
		exes:      exePaths{},
		trees:     treeTable{},
		trackedAt: map[proc.ID]int{},
	}
	t.Cleanup(w.outlet.close)
	dead, alive := testproc.Sleep(t), testproc.Sleep(t)
	for _, id := range []proc.ID{dead.ID, alive.ID} {
		if err := w.Watch(id); err != nil {
			t.Fatal(err)
		}
	}
	dead.Signal(syscall.SIGKILL)
	dead.WaitZombie()
	w.overrun()
	ev, ok := sink.next(time.After(eventDeadline), w.Done())
	if !ok {
		t.Fatal("rescan reported nothing")
	}
	if ev.ID != dead.ID || !ev.Known || ev.Signal != int(syscall.SIGKILL) {
		t.Errorf("rescan reported %+v, want %v killed by SIGKILL", ev, dead.ID)
	}
	w.overrun() // a second rescan must not report it again
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watched[alive.ID.PID][alive.ID.StartTime]; !ok {
		t.Error("the living process is no longer watched after the rescan")
	}
	if _, ok := w.watched[dead.ID.PID]; ok {
		t.Error("the dead process is still watched after the rescan")
	}
	if n := sink.count(); n != 1 {
		t.Errorf("the sink was told %d events after the second rescan, want the one: %+v", n, sink.events)
	}
}

// After an overrun fork events may be lost, so a tree is not trusted until
// a scan has tracked its root again; the users are told to resync.
func TestNetlinkTreesUntrustedAfterOverrun(t *testing.T) {
	testpriv.Root(t)
	sink := newSinkLog()
	w := &netlinkWatcher{
		outlet: newOutlet(sink), opt: Options{}.withDefaults(), watched: map[int]map[uint64]struct{}{},
		exes: exePaths{}, trees: treeTable{}, trackedAt: map[proc.ID]int{},
	}
	t.Cleanup(w.outlet.close)
	master := testproc.Forker(t, testproc.Binary(t))
	if err := w.Watch(master.ID); err != nil {
		t.Fatal(err)
	}
	if tree, err := w.Tree(master.ID); err != nil || len(tree) != 0 {
		t.Fatalf("tree before any loss: %+v, %v", tree, err)
	}
	// No socket: this fork is never seen, as in an overrun.
	worker := master.Fork()
	w.overrun()
	if n := sink.resyncCount(); n != 1 {
		t.Errorf("%d resyncs after an overrun, want 1", n)
	}
	if _, err := w.Tree(master.ID); !errors.Is(err, ErrNoTree) {
		t.Fatalf("tree after an overrun: %v, want ErrNoTree", err)
	}
	// The supervisor's scan finds the worker and tracks it.
	if err := w.Track(master.ID, []proc.Process{{ID: worker, PPID: master.ID.PID}}); err != nil {
		t.Fatal(err)
	}
	tree, err := w.Tree(master.ID)
	if err != nil || len(tree) != 1 || tree[0].ID != worker {
		t.Errorf("tree after the scan: %+v, %v; want the worker %v", tree, err, worker)
	}
}

// parseProcEvent reads the kernel's layout (as the netlink package's
// structs spell it) by offsets, without allocating: it runs for every
// event on the host. A truncated message is refused.
func TestParseProcEventByOffsets(t *testing.T) {
	msg := func(what uint32, data any) []byte {
		var buf bytes.Buffer
		binary.Write(&buf, nl.NativeEndian(), nl.CnMsg{ID: nl.CbID{Idx: netlink.CN_IDX_PROC, Val: netlink.CN_VAL_PROC}})
		binary.Write(&buf, nl.NativeEndian(), netlink.ProcEventHeader{What: what, Timestamp: 1234})
		binary.Write(&buf, nl.NativeEndian(), data)
		return buf.Bytes()
	}
	fork := msg(netlink.PROC_EVENT_FORK, netlink.ForkProcEvent{ParentPid: 1, ParentTgid: 2, ChildPid: 3, ChildTgid: 4})
	if ev, ok := parseProcEvent(fork); !ok || ev.pid != 1 || ev.tgid != 2 || ev.childPid != 3 || ev.childTgid != 4 || ev.at != 1234 {
		t.Errorf("fork parsed as %+v, %v", ev, ok)
	}
	exit := msg(netlink.PROC_EVENT_EXIT, netlink.ExitProcEvent{ProcessPid: 5, ProcessTgid: 6, ExitCode: 9})
	if ev, ok := parseProcEvent(exit); !ok || ev.pid != 5 || ev.tgid != 6 || ev.exitCode != 9 {
		t.Errorf("exit parsed as %+v, %v", ev, ok)
	}
	if ev, ok := parseProcEvent(exit[:cnData+8]); ok {
		t.Errorf("a truncated exit parsed as %+v", ev)
	}
	if n := testing.AllocsPerRun(100, func() { parseProcEvent(fork) }); n != 0 {
		t.Errorf("parsing an event allocates %v times", n)
	}
}

// The socket filter passes the events the backend uses and drops the
// rest in the kernel: a thread's creation, a comm change. It is tried on
// a datagram socket pair, with datagrams laid out as the connector's.
func TestCnFilterDropsWhatIsNeverUsed(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if err := attachCnFilter(fds[1]); err != nil {
		t.Fatal(err)
	}
	datagram := func(what uint32, data any) []byte {
		var buf bytes.Buffer
		binary.Write(&buf, nl.NativeEndian(), unix.NlMsghdr{Type: unix.NLMSG_DONE})
		binary.Write(&buf, nl.NativeEndian(), nl.CnMsg{ID: nl.CbID{Idx: netlink.CN_IDX_PROC, Val: netlink.CN_VAL_PROC}})
		binary.Write(&buf, nl.NativeEndian(), netlink.ProcEventHeader{What: what})
		binary.Write(&buf, nl.NativeEndian(), data)
		return buf.Bytes()
	}
	const procCommEvent = 0x200 // PROC_EVENT_COMM
	cases := []struct {
		name string
		msg  []byte
		pass bool
	}{
		{"process fork", datagram(netlink.PROC_EVENT_FORK, netlink.ForkProcEvent{ParentPid: 1, ParentTgid: 1, ChildPid: 70000, ChildTgid: 70000}), true},
		{"thread creation", datagram(netlink.PROC_EVENT_FORK, netlink.ForkProcEvent{ParentPid: 1, ParentTgid: 1, ChildPid: 70001, ChildTgid: 70000}), false},
		{"thread exit", datagram(netlink.PROC_EVENT_EXIT, netlink.ExitProcEvent{ProcessPid: 70001, ProcessTgid: 70000}), true},
		{"exec", datagram(netlink.PROC_EVENT_EXEC, netlink.ExecProcEvent{ProcessPid: 70000, ProcessTgid: 70000}), true},
		{"listen ack", datagram(netlink.PROC_EVENT_NONE, uint32(0)), true},
		{"comm change", datagram(procCommEvent, [24]byte{}), false},
	}
	for i := range cases {
		cases[i].msg = append(cases[i].msg, byte(i)) // a tag past the fields: tells them apart
		c := cases[i]
		if _, err := unix.Write(fds[0], c.msg); err != nil {
			t.Fatal(err)
		}
	}
	// A sentinel after them: everything before it has been filtered.
	sentinel := bytes.Clone(cases[0].msg)
	sentinel[len(sentinel)-1] = 0xff
	if _, err := unix.Write(fds[0], sentinel); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	buf := make([]byte, 256)
	for len(got) == 0 || !bytes.Equal(got[len(got)-1], sentinel) {
		n, err := unix.Read(fds[1], buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bytes.Clone(buf[:n]))
	}
	var want [][]byte
	for _, c := range cases {
		if c.pass {
			want = append(want, c.msg)
		}
	}
	want = append(want, sentinel)
	if len(got) != len(want) {
		t.Fatalf("%d datagrams passed the filter, want %d (process fork, thread exit, exec, ack, sentinel)", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d passed is not the expected one", i)
		}
	}
}

// An exit event is the one word of a group's end: when the group's stat
// cannot be read at that moment, it is read again until it can, and the
// death is told.
func TestNetlinkExitReadAgainAfterAFailedRead(t *testing.T) {
	root := t.TempDir()
	sink := newSinkLog()
	w := &netlinkWatcher{
		outlet: newOutlet(sink), opt: Options{ProcRoot: root}.withDefaults(), watched: map[int]map[uint64]struct{}{},
		exes: exePaths{}, trees: treeTable{}, trackedAt: map[proc.ID]int{},
	}
	t.Cleanup(w.outlet.close)
	id := proc.ID{PID: 42, StartTime: 12345}
	w.watched[id.PID] = map[uint64]struct{}{id.StartTime: {}}
	stat := filepath.Join(root, "42", "stat")
	if err := os.MkdirAll(filepath.Dir(stat), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stat, []byte("42 (svc) Z 1 ?\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.threadExited(procEvent{pid: 42, tgid: 42, exitCode: int(syscall.SIGKILL)})
	if n := sink.count(); n != 0 {
		t.Fatalf("an unreadable group was told as exited: %+v", sink.events)
	}
	f := make([]string, 53)
	for i := range f {
		f[i] = "0"
	}
	f[3], f[4], f[5], f[6], f[20], f[22] = "Z", "0", "-1", "-1", "1", "12345"
	if err := os.WriteFile(stat, []byte("42 (svc) "+strings.Join(f[3:], " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev, ok := sink.next(time.After(eventDeadline), w.Done())
	if !ok {
		t.Fatal("the exit was lost once the group's first read failed")
	}
	if ev.ID != id || !ev.Known || ev.Signal != int(syscall.SIGKILL) {
		t.Errorf("told %+v, want %v killed by SIGKILL", ev, id)
	}
}
