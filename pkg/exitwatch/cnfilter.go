// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The proc connector sends every event of the host to every listener. A
// classic BPF filter on the socket (unprivileged, on every kernel the
// connector runs on) drops in the kernel what the netlink backend never
// uses, so those events do not wake pcheck: a thread's creation (a fork
// whose child is not a thread group's leader) and the events other than
// fork, exec, exit and the listen acknowledgement (uid, gid, sid, comm,
// ptrace, coredump changes). A thread's exit is kept: it may end a group
// whose leader exited first.

// Offsets in a proc connector datagram, from its nlmsghdr.
const (
	cnMsgAt       = unix.SizeofNlMsghdr // the cn_msg
	cnWhatAbs     = cnMsgAt + cnWhatOff
	cnChildPidAbs = cnMsgAt + cnData + 8 // fork: child_pid
	cnChildTgidAb = cnMsgAt + cnData + 12
)

// cnFilter is the filter's program.
func cnFilter() []unix.SockFilter {
	// A classic BPF word load reads big-endian; the connector writes host
	// order, so the constants are read as the load will read them.
	be := func(v uint32) uint32 {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], v)
		return binary.BigEndian.Uint32(b[:])
	}
	const (
		ldAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jeqX   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_X
		ret    = unix.BPF_RET | unix.BPF_K
		tax    = unix.BPF_MISC | unix.BPF_TAX
		all    = 0xffffffff
	)
	return []unix.SockFilter{
		/* 0 */ {Code: ldAbsW, K: cnWhatAbs},
		/* 1 */ {Code: jeqK, K: be(netlink.PROC_EVENT_FORK), Jt: 4}, // to 6
		/* 2 */ {Code: jeqK, K: be(netlink.PROC_EVENT_EXIT), Jt: 8}, // to 11
		/* 3 */ {Code: jeqK, K: be(netlink.PROC_EVENT_EXEC), Jt: 7},
		/* 4 */ {Code: jeqK, K: be(netlink.PROC_EVENT_NONE), Jt: 6},
		/* 5 */ {Code: ret, K: 0}, // another event: drop
		/* 6 */ {Code: ldAbsW, K: cnChildTgidAb},
		/* 7 */ {Code: tax},
		/* 8 */ {Code: ldAbsW, K: cnChildPidAbs},
		/* 9 */ {Code: jeqX, Jt: 1}, // a process, not a thread: to 11
		/* 10 */ {Code: ret, K: 0},
		/* 11 */ {Code: ret, K: all},
	}
}

// attachCnFilter puts cnFilter on the socket fd.
func attachCnFilter(fd int) error {
	prog := cnFilter()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attaching the proc connector's event filter: %w", err)
	}
	return nil
}
