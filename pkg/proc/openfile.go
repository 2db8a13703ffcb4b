// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openIfRegular opens path (following symbolic links) for reading only if
// it is a regular file. Anything else comes back opened O_PATH: it can be
// fstat'ed, and so refused by what it is, but was never opened for real.
// pcheck is root, and the paths it reads a pid or a #! line from (a
// pidfile, a process entry's executable) may be in a directory the
// service's user writes: a FIFO there would block the open forever, and a
// symbolic link to a device would have root open it (opening a watchdog
// device starts its countdown to a reboot).
func openIfRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return os.NewFile(uintptr(fd), path), nil
	}
	// Reopening through the descriptor opens the inode just checked, not
	// whatever the path names by now.
	rfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	unix.Close(fd)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(rfd), path), nil
}
