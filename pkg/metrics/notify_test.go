// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// notifySource is a Source with a notifier's counts.
type notifySource struct {
	fakeSource
	stats *NotifyStats
}

func (n *notifySource) NotifyStats() (NotifyStats, bool) {
	if n.stats == nil {
		return NotifyStats{}, false
	}
	return *n.stats, true
}

func TestNotifyCountsAreSeriesOnlyWithANotifier(t *testing.T) {
	src := &notifySource{}
	m := New(src, Options{})
	if n, err := testutil.GatherAndCount(m.reg, "pwatch_notify_failed_total"); err != nil || n != 0 {
		t.Fatalf("without a notifier: %d series, %v", n, err)
	}
	src.stats = &NotifyStats{Sent: 4, Failed: 2, Suppressed: 7, Dropped: 1}
	want := `
# HELP pwatch_notify_failed_total Runs of the notify command that failed: refused by the trust rule, not started, a non-zero exit, or killed at its timeout.
# TYPE pwatch_notify_failed_total counter
pwatch_notify_failed_total 2
# HELP pwatch_notify_sent_total Runs of the notify command that succeeded.
# TYPE pwatch_notify_sent_total counter
pwatch_notify_sent_total 4
# HELP pwatch_notify_suppressed_total Events not notified because of the per-service rate limit (said in one summary per window).
# TYPE pwatch_notify_suppressed_total counter
pwatch_notify_suppressed_total 7
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "pwatch_notify_failed_total", "pwatch_notify_sent_total", "pwatch_notify_suppressed_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.reg, "pwatch_notify_dropped_total"); err != nil || n != 1 {
		t.Fatalf("dropped: %d series, %v", n, err)
	}
}
