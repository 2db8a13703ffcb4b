// SPDX-License-Identifier: Apache-2.0

// Package proc is pwatch's view of the process table: scanning and matching
// /proc, process identities that survive PID reuse, and killing trees safely.
package proc

import (
	"fmt"
	"time"
)

// TicksPerSecond is the unit of the times /proc gives (start time, utime,
// stime): USER_HZ, which is 100 on every Linux ABI whatever the kernel's
// own HZ.
const TicksPerSecond = 100

// TicksDuration is a count of /proc's clock ticks as a duration.
func TicksDuration(ticks uint64) time.Duration {
	return time.Duration(ticks) * (time.Second / TicksPerSecond)
}

// ID identifies one process for its whole life. A PID alone is reused by the
// kernel; the pair (PID, start time) is not.
type ID struct {
	PID int
	// StartTime is field 22 of /proc/PID/stat: clock ticks after boot
	// (TicksPerSecond).
	StartTime uint64
}

func (id ID) String() string { return fmt.Sprintf("%d@%d", id.PID, id.StartTime) }
