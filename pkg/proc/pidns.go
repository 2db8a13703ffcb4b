// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// InitialPIDNamespace is the inode number of the initial pid namespace
// (PROC_PID_INIT_INO): the host's, outside every container.
const InitialPIDNamespace = 0xEFFFFFFC

// PIDNamespace is the inode number of the caller's own pid namespace.
func PIDNamespace(procRoot string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(procRoot+"/self/ns/pid", &st); err != nil {
		return 0, fmt.Errorf("reading the pid namespace: %w", err)
	}
	return st.Ino, nil
}

// CheckOwnNamespace refuses a proc mount whose pids are another pid
// namespace's than the caller's (a container that kept the host's /proc):
// every pid read there would name another process to pidfd_open and
// kill(2). A tree without /proc/self (a test fixture) is not checked.
func CheckOwnNamespace(procRoot string) error {
	self, err := os.Readlink(procRoot + "/self")
	if err != nil {
		return nil
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("%s shows another pid namespace's pids (%s/self is %s, pcheck is pid %d here): mount a proc for this namespace (unshare --mount-proc, or a container's own /proc)", procRoot, procRoot, self, os.Getpid())
	}
	return nil
}
