// SPDX-License-Identifier: Apache-2.0

package sockdiag

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pwatch/pwatch/pkg/proc"
)

// The ways a listen check fails. Each fails the stall check like an
// unanswered probe.
var (
	// ErrNoListener: nothing listens on the port.
	ErrNoListener = errors.New("no LISTEN socket on the port")
	// ErrNotOwned: something listens on the port, but not the service.
	ErrNotOwned = errors.New("no LISTEN socket on the port belongs to the service")
	// ErrAcceptQueueFull: a listener of the service has a full accept queue
	// (see Listener.Full).
	ErrAcceptQueueFull = errors.New("accept queue full")
)

// Result is what a listen check found.
type Result struct {
	// Owned are the service's listeners on the port; Foreign the others'.
	Owned, Foreign []Listener
}

// Fullest is the service's listener whose accept queue is the fullest
// (relative to its backlog), and false when it has none.
func (r Result) Fullest() (Listener, bool) {
	if len(r.Owned) == 0 {
		return Listener{}, false
	}
	best := r.Owned[0]
	for _, l := range r.Owned[1:] {
		if l.Fill() > best.Fill() {
			best = l
		}
	}
	return best, true
}

// Check looks for the LISTEN sockets on port, and checks that one belongs to
// the processes pids (its inode among their descriptors in /proc) and that
// none of theirs has a full accept queue. The sockets are looked for in
// each network namespace of the processes (see netns.go). The Result is
// filled in whenever the kernel answered, also with ErrNotOwned or
// ErrAcceptQueueFull. When no listener of the service was found and a
// namespace of theirs could not be entered, the error wraps ErrSkipped.
// The listeners' addresses are not compared with the probe's host: the
// port is what the service owns.
func Check(port int, pids []int) (Result, error) {
	own, others, unreadable := namespaces("/proc", pids)
	var ls []Listener
	if own {
		l, err := Listeners(port)
		if err != nil {
			return Result{}, err
		}
		ls = l
	} else if port < 1 || port > 65535 {
		return Result{}, fmt.Errorf("sockdiag: port %d out of range", port)
	}
	var skipped error
	for pid, err := range unreadable {
		skipped = fmt.Errorf("the network namespace of pid %d: %w", pid, err)
	}
	for _, pid := range others {
		l, err := ListenersIn(pid, port)
		if err != nil {
			if _, gone := netnsOf("/proc", pid); proc.IsGone(gone) {
				continue
			}
			skipped = err
			continue
		}
		ls = append(ls, l...)
	}
	r, err := match(port, pids, ls)
	if err != nil && len(r.Owned) == 0 && skipped != nil {
		return r, fmt.Errorf("port %d: %w: %v", port, ErrSkipped, skipped)
	}
	return r, err
}

// match checks the listeners ls on port against the processes pids.
func match(port int, pids []int, ls []Listener) (Result, error) {
	if len(ls) == 0 {
		return Result{}, fmt.Errorf("port %d: %w", port, ErrNoListener)
	}
	mine, err := SocketInodes("/proc", pids)
	if err != nil {
		return Result{}, err
	}
	var r Result
	for _, l := range ls {
		if mine[l.Inode] {
			r.Owned = append(r.Owned, l)
		} else {
			r.Foreign = append(r.Foreign, l)
		}
	}
	if len(r.Owned) == 0 {
		// Say whose pids these are: the listeners belong to someone else.
		held := "1 listener, held by another process"
		if len(ls) > 1 {
			held = fmt.Sprintf("%d listeners, held by other processes", len(ls))
		}
		return r, fmt.Errorf("port %d: %w (%s; the service's pids: %s)", port, ErrNotOwned, held, joinPIDs(pids))
	}
	for _, l := range r.Owned {
		if l.Full() {
			return r, fmt.Errorf("port %d, %v: %d connections waiting, backlog %d: %w",
				port, l.Addr, l.AcceptQueue, l.Backlog, ErrAcceptQueueFull)
		}
	}
	return r, nil
}

// joinPIDs lists pids as "1, 2, 3" ("none" for none).
func joinPIDs(pids []int) string {
	if len(pids) == 0 {
		return "none"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}
