// SPDX-License-Identifier: Apache-2.0

package control

import (
	"strconv"
	"strings"
)

// usageHeader are padmin status's columns of the last sample of a
// service's tree (services with limits only; "-" for what is not
// sampled): memory (PSS), CPU % of one core, open descriptors.
const usageHeader = "MEM\tCPU\tFDS"

// formatUsage is the usage columns of one service.
func formatUsage(u *Usage) string {
	if u == nil {
		return "-\t-\t-"
	}
	mem, cpu, fds := "-", "-", "-"
	if u.MemoryBytes != nil {
		mem = formatBytes(*u.MemoryBytes)
	}
	if u.CPUPercent != nil {
		cpu = strconv.FormatFloat(*u.CPUPercent, 'f', 0, 64) + "%"
	}
	if u.FDs != nil {
		fds = strconv.Itoa(*u.FDs)
	}
	return mem + "\t" + cpu + "\t" + fds
}

// formatBytes keeps one decimal in the largest 1024-based unit: 412.5MiB.
func formatBytes(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(b), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[i]
}
