// SPDX-License-Identifier: Apache-2.0

// Package limits samples the resources of the watched service trees
// (memory, CPU, file descriptors, threads) and applies the pfile's limits:
// a limit exceeded on every sample for limit_for restarts the service
// gently, or only logs (limit_action log). One Sampler serves every
// service with limits, on one timer; services without limits cost
// nothing.
package limits

import (
	"fmt"
	"strconv"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// The limits, by their pfile keys (PWATCH_LIMIT).
const (
	MemoryMax  = "memory_max"
	CPUMax     = "cpu_max"
	FDsMax     = "fds_max"
	ThreadsMax = "threads_max"
)

// Names are the limits in the order they are checked.
var Names = []string{MemoryMax, CPUMax, FDsMax, ThreadsMax}

// Limits are one service's limits; 0 is no limit.
type Limits struct {
	MemoryBytes int64
	CPUPercent  int
	FDs         int
	Threads     int
	// For is how long a limit must be exceeded, sample after sample,
	// before it acts.
	For time.Duration
	// LogOnly: limit_action log.
	LogOnly bool
}

// Of is the limits of a service's pfile.
func Of(s *pfile.Service) Limits {
	return Limits{
		MemoryBytes: s.MemoryMax, CPUPercent: s.CPUMax, FDs: s.FDsMax, Threads: s.ThreadsMax,
		For: s.LimitFor, LogOnly: s.LimitAction == pfile.LimitLog,
	}
}

// Any says whether a limit is set.
func (l Limits) Any() bool {
	return l.MemoryBytes > 0 || l.CPUPercent > 0 || l.FDs > 0 || l.Threads > 0
}

// Max is the limit's value (0: not set).
func (l Limits) Max(limit string) float64 {
	switch limit {
	case MemoryMax:
		return float64(l.MemoryBytes)
	case CPUMax:
		return float64(l.CPUPercent)
	case FDsMax:
		return float64(l.FDs)
	case ThreadsMax:
		return float64(l.Threads)
	}
	return 0
}

// Usage is one sample of a service's tree.
type Usage struct {
	// At is when the sample was taken (wall clock, for padmin).
	At time.Time
	// Processes sampled: the top-level processes and their descendants.
	Processes int
	// MemoryBytes is the sum of the processes' RSS, or of their PSS
	// (PSS true) when their RSS passes 90 % of memory_max: only then is
	// the costly smaps_rollup read.
	MemoryBytes uint64
	PSS         bool
	// CPUPercent is the tree's CPU over the last period, in percent of
	// one core; HasCPU is false on a tree's first sample.
	CPUPercent float64
	HasCPU     bool
	// CPUSeconds adds up the CPU the sampled processes used between
	// samples, since the service was first sampled: it only grows.
	CPUSeconds float64
	// FDs are the tree's open descriptors; HasFDs is false when fds_max
	// is not set (the fd directories are not read then).
	FDs    int
	HasFDs bool
	// Threads of the tree.
	Threads int
}

// Value is the usage a limit is compared with; false when unknown.
func (u Usage) Value(limit string) (float64, bool) {
	switch limit {
	case MemoryMax:
		return float64(u.MemoryBytes), true
	case CPUMax:
		return u.CPUPercent, u.HasCPU
	case FDsMax:
		return float64(u.FDs), u.HasFDs
	case ThreadsMax:
		return float64(u.Threads), true
	}
	return 0, false
}

// Format writes a value of limit as the over-limit line does: sizes in
// KiB, MiB or GiB, CPU in percent, counts as they are.
func Format(limit string, v float64) string {
	switch limit {
	case MemoryMax:
		return FormatSize(v)
	case CPUMax:
		return strconv.FormatFloat(v, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// FormatSize writes bytes in the largest 1024-based unit that keeps the
// number at least 1, with up to two decimals: 1.21 GiB, 64 MiB, 512 B.
func FormatSize(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	s := strconv.FormatFloat(b, 'f', 2, 64)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return fmt.Sprintf("%s %s", s, units[i])
}
