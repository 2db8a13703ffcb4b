// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"fmt"
	"syscall"
)

// pcheck's file descriptors are its probes' sockets, the pidfds of its
// kills and (on the pidfd backend) of every watched process, its scripts'
// pipes and its reads of /proc. The HTTP endpoints are the only place
// where others decide how many it opens, so they get a bounded share:
//
//   - at start pcheck raises its soft RLIMIT_NOFILE to the hard limit;
//   - it keeps half of that limit, and never fewer than fdReserve, for its
//     own work; the HTTP listeners share the rest, each holding at most
//     --http-max-conns connections, fewer when the rest is smaller (at
//     least one each).
//
// With systemd's default hard limit (524288) that is never lower than the
// flag; with a hard limit of 1024 the two listeners may hold 256 each.

// fdReserve is the fewest file descriptors kept for pcheck's own work.
const fdReserve = 512

// raiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit and returns
// it. Go's runtime does this at start already and then gives child
// processes the limit pcheck was started with; setrlimit is only called
// when the soft limit is still lower, so scripts keep theirs.
func raiseFDLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// httpConnCap is each of n listeners' connection cap under the file limit
// limit, when want was asked for.
func httpConnCap(limit uint64, n, want int) int {
	reserve := max(limit/2, fdReserve)
	if limit <= reserve || n < 1 {
		return 1
	}
	return int(max(1, min(uint64(want), (limit-reserve)/uint64(n))))
}
