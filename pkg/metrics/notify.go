// SPDX-License-Identifier: Apache-2.0

package metrics

import "github.com/pwatch/pwatch/internal/promtext"

// NotifySource is what a Source also offers when pcheck runs a notify
// command (--notify-command): the pwatch_notify_* series are left out for
// a Source that is not one, or says ok false.
type NotifySource interface {
	NotifyStats() (stats NotifyStats, ok bool)
}

// NotifyStats are the notifier's counts (pkg/notify.Stats).
type NotifyStats struct {
	// Sent and Failed count runs of the command.
	Sent, Failed uint64
	// Suppressed counts events held back by the rate limit; Dropped those
	// lost to a full queue.
	Suppressed, Dropped uint64
}

// notifyFamilies read NotifyStats at each scrape.
func notifyFamilies(src NotifySource) []*promtext.Family {
	s, ok := src.NotifyStats()
	if !ok {
		return nil
	}
	sent := counter("pwatch_notify_sent_total", "Runs of the notify command that succeeded.")
	failed := counter("pwatch_notify_failed_total", "Runs of the notify command that failed: refused by the trust rule, not started, a non-zero exit, or killed at its timeout.")
	suppressed := counter("pwatch_notify_suppressed_total", "Events not notified because of the per-service rate limit (said in one summary per window).")
	dropped := counter("pwatch_notify_dropped_total", "Notifications lost because the notify queue was full.")
	sent.Add(float64(s.Sent))
	failed.Add(float64(s.Failed))
	suppressed.Add(float64(s.Suppressed))
	dropped.Add(float64(s.Dropped))
	return []*promtext.Family{sent, failed, suppressed, dropped}
}
