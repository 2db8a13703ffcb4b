// SPDX-License-Identifier: Apache-2.0

package sockdiag

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/pkg/proc"
)

// SocketInodes returns the inodes of the sockets open in the processes pids,
// read from procRoot ("/proc") as PID/fd/N -> socket:[INODE]. Processes and
// descriptors that vanish while they are read are skipped: that is normal.
func SocketInodes(procRoot string, pids []int) (map[uint64]bool, error) {
	fsys, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("sockdiag: %w", err)
	}
	inodes := make(map[uint64]bool)
	for _, pid := range pids {
		targets, err := fdTargets(fsys, pid)
		if proc.IsGone(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sockdiag: %w", err)
		}
		for _, target := range targets {
			if ino, ok := socketInode(target); ok {
				inodes[ino] = true
			}
		}
	}
	return inodes, nil
}

// fdTargets lists where pid's descriptors point; one that closes while it
// is read is left out ("").
func fdTargets(fsys procfs.FS, pid int) ([]string, error) {
	p, err := fsys.Proc(pid)
	if err != nil {
		return nil, err
	}
	return p.FileDescriptorTargets()
}

// socketInode reads "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}
