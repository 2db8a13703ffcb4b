// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"net/http"
	"strings"
	"testing"
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
	base := serve(t, m.Handler(), nil)
	if _, _, body := get(t, http.MethodGet, base+"/metrics"); strings.Contains(body, "pwatch_notify_") {
		t.Fatalf("without a notifier:\n%s", body)
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
	_, _, body := get(t, http.MethodGet, base+"/metrics")
	if !strings.Contains(body, want) {
		t.Fatalf("no\n%s\nin\n%s", want, body)
	}
	mustValue(t, scrape(t, base), 1, "pwatch_notify_dropped_total")
}
