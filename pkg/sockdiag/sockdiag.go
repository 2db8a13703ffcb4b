// SPDX-License-Identifier: Apache-2.0

// Package sockdiag asks the kernel, through netlink sock_diag, for the
// LISTEN TCP sockets on a port, and checks that one of them belongs to a
// service's processes and that its accept queue is not full.
//
// The request carries the state filter (LISTEN only) and the port, so the
// kernel walks its listening hash alone: the answer and its cost do not grow
// with the host's established connections. vishvananda/netlink's high-level
// calls (SocketDiagTCP, SocketDiagTCPInfo) dump every state, so the request
// is built here and sent with its nl package.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Listener is one LISTEN TCP socket.
type Listener struct {
	// Inode is the socket's inode, as in /proc/PID/fd/N -> socket:[Inode].
	Inode uint64
	// Addr is the local address; its Addr().Is6() tells an AF_INET6 socket
	// (which may also take IPv4 connections).
	Addr netip.AddrPort
	// AcceptQueue is the number of established connections waiting for
	// accept(); Backlog is the queue's limit (listen()'s backlog, capped by
	// net.core.somaxconn).
	AcceptQueue, Backlog uint32
}

// Full reports whether the accept queue is full: the kernel drops new
// connections to this socket now. The kernel lets the queue hold
// Backlog+1 connections (its test is sk_ack_backlog > sk_max_ack_backlog),
// and so does this: a queue at exactly Backlog still takes one more, and
// listen(fd, 0) would otherwise be full when empty.
func (l Listener) Full() bool { return l.AcceptQueue > l.Backlog }

// Fill is the accept queue's length over its backlog (status, metrics): 1
// is at the limit, above 1 is full.
func (l Listener) Fill() float64 {
	return float64(l.AcceptQueue) / float64(max(l.Backlog, 1))
}

const (
	tcpListen = 10 // TCP_LISTEN in include/net/tcp_states.h

	// idiag_states masks: LISTEN only, and every state.
	statesListen = 1 << tcpListen
	statesAll    = 0xfff

	sizeofReq = 56 // struct inet_diag_req_v2
	sizeofMsg = 72 // struct inet_diag_msg

	// dumpRetries bounds the retries of a dump the kernel marks
	// interrupted (the hash changed while it was walked).
	dumpRetries = 3
)

// Listeners returns the LISTEN TCP sockets (IPv4 and IPv6) on port in the
// caller's network namespace.
func Listeners(port int) ([]Listener, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("sockdiag: port %d out of range", port)
	}
	return dump(uint16(port), statesListen)
}

// dump asks for the TCP sockets in states whose local port is port (0: any)
// of both families.
func dump(port uint16, states uint32) ([]Listener, error) {
	var out []Listener
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		ls, err := dumpFamily(family, port, states)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

// dumpWith is dump through s, a socket opened in another network
// namespace.
func dumpWith(s *nl.NetlinkSocket, port uint16, states uint32) ([]Listener, error) {
	var out []Listener
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		ls, err := dumpFamilyWith(s, family, port, states)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

func dumpFamily(family uint8, port uint16, states uint32) ([]Listener, error) {
	return dumpFamilyWith(nil, family, port, states)
}

// dumpFamilyWith dumps through s, or a socket of its own when s is nil.
func dumpFamilyWith(s *nl.NetlinkSocket, family uint8, port uint16, states uint32) ([]Listener, error) {
	for attempt := 1; ; attempt++ {
		var out []Listener
		var perr error
		req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
		if s != nil {
			req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_INET_DIAG: {Socket: s}}
		}
		req.AddRawData(request(family, port, states))
		err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(m []byte) bool {
			l, err := parse(m)
			if err != nil {
				perr = err
				return false
			}
			out = append(out, l)
			return true
		})
		switch {
		case errors.Is(err, nl.ErrDumpInterrupted) && attempt < dumpRetries:
			continue
		case err != nil:
			return nil, fmt.Errorf("sockdiag: inet_diag dump (family %d): %w", family, err)
		case perr != nil:
			return nil, fmt.Errorf("sockdiag: %w", perr)
		}
		return out, nil
	}
}

// request builds a struct inet_diag_req_v2 for TCP sockets of family in
// states, with the local port in its id: the kernel skips listeners on other
// ports, and with LISTEN alone in states it never walks the established hash.
func request(family uint8, port uint16, states uint32) []byte {
	b := make([]byte, sizeofReq)
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	// b[2] idiag_ext = 0: no extensions, b[3] pad.
	binary.NativeEndian.PutUint32(b[4:], states)
	// inet_diag_sockid at 8: sport, dport (big endian), src[16], dst[16],
	// if, cookie[2]; only sport is set.
	binary.BigEndian.PutUint16(b[8:], port)
	binary.NativeEndian.PutUint32(b[48:], nl.TCPDIAG_NOCOOKIE)
	binary.NativeEndian.PutUint32(b[52:], nl.TCPDIAG_NOCOOKIE)
	return b
}

// parse reads a struct inet_diag_msg. For a LISTEN socket the kernel
// reports the accept queue's length in idiag_rqueue and its limit in
// idiag_wqueue.
func parse(m []byte) (Listener, error) {
	if len(m) < sizeofMsg {
		return Listener{}, fmt.Errorf("inet_diag_msg of %d bytes, want %d", len(m), sizeofMsg)
	}
	port := binary.BigEndian.Uint16(m[4:])
	var addr netip.Addr
	switch m[0] {
	case unix.AF_INET:
		addr = netip.AddrFrom4([4]byte(m[8:12]))
	case unix.AF_INET6:
		addr = netip.AddrFrom16([16]byte(m[8:24]))
	default:
		return Listener{}, fmt.Errorf("inet_diag_msg of family %d", m[0])
	}
	return Listener{
		Addr:        netip.AddrPortFrom(addr, port),
		AcceptQueue: binary.NativeEndian.Uint32(m[56:]),
		Backlog:     binary.NativeEndian.Uint32(m[60:]),
		Inode:       uint64(binary.NativeEndian.Uint32(m[68:])),
	}, nil
}
