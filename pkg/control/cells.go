// SPDX-License-Identifier: Apache-2.0

package control

import "strings"

// The cells of padmin status's table, for other views of the same status
// (pcheck's status page), so that both say the same in the same words.

// UptimeText is an uptime as padmin status shows it: 42s, 5m07s, 3h02m;
// "-" for none.
func UptimeText(seconds int64) string { return formatUptime(seconds) }

// NextText is what is due next: "attempt 12s", "re-arm 9m30s" or "-".
func NextText(s ServiceStatus) string { return formatNext(s) }

// ChecksText is the state of the stall-check blocks: "-", "ok",
// "failing since ...", or BLOCK=STATE for each of several.
func ChecksText(checks []CheckStatus) string { return formatChecks(checks) }

// UsageText is the last sample of the service's tree, as padmin status's
// MEM, CPU and FDS columns say it: "412.5MiB, 12% CPU, 88 fds"; "-" for a
// service not sampled (no limits).
func UsageText(u *Usage) string {
	if u == nil {
		return "-"
	}
	parts := strings.Split(formatUsage(u), "\t")
	return parts[0] + ", " + parts[1] + " CPU, " + parts[2] + " fds"
}
