// SPDX-License-Identifier: Apache-2.0

package sockdiag

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/proc"
)

// ErrSkipped: the check could not look where the service listens (its
// network namespace could not be entered). The caller passes the round and
// says so once: a check that cannot see must not kill.
var ErrSkipped = errors.New("listen check skipped")

// A service in a network namespace of its own (a container, ip netns)
// binds its port there: its LISTEN socket is in that namespace's tables,
// invisible to a sock_diag socket of pcheck's. Each namespace of the
// service's processes is asked with a netlink socket opened inside it.
// Socket inodes are unique across namespaces (one sockfs), so ownership is
// still read from the processes' descriptors.

// netnsOf is the inode of pid's network namespace, read from procRoot.
func netnsOf(procRoot string, pid int) (uint64, error) {
	var st unix.Stat_t
	p := filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net")
	if err := unix.Stat(p, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return st.Ino, nil
}

// openIn opens a sock_diag netlink socket in the network namespace of pid.
// It is a var so that tests can make entering fail.
var openIn = func(pid int) (*nl.NetlinkSocket, error) {
	ns, err := netns.GetFromPath(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	type opened struct {
		s   *nl.NetlinkSocket
		err error
	}
	c := make(chan opened, 1)
	// A locked thread of its own: it is handed back to the runtime only
	// once it is in pcheck's namespace again; one left in the service's
	// ends with this goroutine (Go exits a thread still locked).
	go func() {
		runtime.LockOSThread()
		self, err := netns.Get()
		if err != nil {
			c <- opened{nil, err}
			return
		}
		defer self.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			c <- opened{nil, err}
			return
		}
		s, err := nl.Subscribe(unix.NETLINK_INET_DIAG) // no groups: a plain socket
		if netns.Set(self) == nil {
			runtime.UnlockOSThread()
		}
		c <- opened{s, err}
	}()
	o := <-c
	if o.err != nil {
		return nil, o.err
	}
	if err := o.s.SetSendTimeout(&nl.SocketTimeoutTv); err != nil {
		o.s.Close()
		return nil, err
	}
	if err := o.s.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		o.s.Close()
		return nil, err
	}
	return o.s, nil
}

// ListenersIn returns the LISTEN TCP sockets on port in the network
// namespace of pid.
func ListenersIn(pid, port int) ([]Listener, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("sockdiag: port %d out of range", port)
	}
	s, err := openIn(pid)
	if err != nil {
		return nil, fmt.Errorf("sockdiag: entering the network namespace of pid %d: %w", pid, err)
	}
	defer s.Close()
	return dumpWith(s, uint16(port), statesListen)
}

// namespaces groups pids by network namespace: for each, one pid in it,
// pcheck's own first when any pid is there (asked without entering).
// Processes that are gone are left out; pids whose namespace cannot be
// read are returned apart.
func namespaces(procRoot string, pids []int) (own bool, others []int, unreadable map[int]error) {
	self, err := netnsOf(procRoot, os.Getpid())
	if err != nil {
		return true, nil, nil // no /proc/self/ns: ask here, as before namespaces
	}
	seen := map[uint64]bool{self: true}
	for _, pid := range pids {
		ino, err := netnsOf(procRoot, pid)
		switch {
		case proc.IsGone(err):
			continue
		case err != nil:
			if unreadable == nil {
				unreadable = map[int]error{}
			}
			unreadable[pid] = err
			continue
		case ino == self:
			own = true
		case !seen[ino]:
			seen[ino] = true
			others = append(others, pid)
		}
	}
	if !own && len(others) == 0 && len(unreadable) == 0 {
		own = true // every pid gone: the answer is "no listener", here
	}
	return own, others, unreadable
}
