// SPDX-License-Identifier: Apache-2.0

// Package proc is pwatch's view of the process table: scanning and matching
// /proc, process identities that survive PID reuse, and killing trees safely.
package proc

import "fmt"

// ID identifies one process for its whole life. A PID alone is reused by the
// kernel; the pair (PID, start time) is not.
type ID struct {
	PID int
	// StartTime is field 22 of /proc/PID/stat: clock ticks after boot.
	StartTime uint64
}

func (id ID) String() string { return fmt.Sprintf("%d@%d", id.PID, id.StartTime) }
