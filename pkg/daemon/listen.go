// SPDX-License-Identifier: Apache-2.0

package daemon

import "github.com/pwatch/pwatch/pkg/sockdiag"

// listenCheck is supervise's ListenCheck through the kernel's sock_diag:
// a LISTEN socket on port owned by pids, its accept queue not full.
func listenCheck(port int, pids []int) (queue, backlog int, err error) {
	r, err := sockdiag.Check(port, pids)
	if l, ok := r.Fullest(); ok {
		return int(l.AcceptQueue), int(l.Backlog), err
	}
	return -1, -1, err
}
