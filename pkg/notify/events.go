// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultEvents are the events notified unless --notify-events says
// otherwise: those that want a human.
const DefaultEvents = "down,stall,retry_over,reboot,limit"

// Suppressed is the event name of a rate limit's summary ("12 more events
// of web suppressed in 10 m"). It is always sent; it cannot be selected.
const Suppressed = "suppressed"

// KnownEvents are the catalogue's event names (the `event` field of each
// pcheck line, pkg/msg), which --notify-events may name. TestKnownEvents
// keeps the list in step with the catalogue.
var KnownEvents = []string{
	"adopted", "command", "death_watch_stopped", "down", "ended",
	"kill_failed", "killed", "limit", "orphans_killed", "program_refused",
	"rearm", "reboot", "reboot_threshold", "recovery_timeout", "reload",
	"reload_refused", "restart", "retry_over", "set_pid_fail", "stall", "up",
}

// ParseEvents reads --notify-events: event names separated by commas
// (blanks around them ignored). An empty list is DefaultEvents; an unknown
// name is an error listing the known ones.
func ParseEvents(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		list = DefaultEvents
	}
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			return nil, fmt.Errorf("%q: an empty event name", list)
		case !slices.Contains(KnownEvents, name):
			return nil, fmt.Errorf("%q: unknown event %q; known events: %s", list, name, strings.Join(KnownEvents, ", "))
		case !slices.Contains(out, name):
			out = append(out, name)
		}
	}
	return out, nil
}
