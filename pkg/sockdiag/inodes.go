// SPDX-License-Identifier: Apache-2.0

package sockdiag

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// SocketInodes returns the inodes of the sockets open in the processes pids,
// read from procRoot ("/proc") as PID/fd/N -> socket:[INODE]. Processes and
// descriptors that vanish while they are read are skipped: that is normal.
func SocketInodes(procRoot string, pids []int) (map[uint64]bool, error) {
	inodes := make(map[uint64]bool)
	for _, pid := range pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			if vanished(err) {
				continue
			}
			return nil, fmt.Errorf("sockdiag: %w", err)
		}
		for _, e := range entries {
			target, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				if vanished(err) {
					continue
				}
				return nil, fmt.Errorf("sockdiag: %w", err)
			}
			if ino, ok := socketInode(target); ok {
				inodes[ino] = true
			}
		}
	}
	return inodes, nil
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

func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
