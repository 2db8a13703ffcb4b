// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"time"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/reboot"
)

// newEventHub starts the event history: from now on every catalogue line
// log writes is also an event, stamped on the wall clock and CLOCK_BOOTTIME.
// The caller detaches it (log.Observe(nil)) when pcheck's run ends.
func newEventHub(log *msg.Logger) (*events.Hub, error) {
	clock, err := reboot.SystemClock(time.Now)
	if err != nil {
		return nil, err
	}
	hub := events.NewHub(events.DefaultKeep, func() events.Stamp {
		return events.Stamp{Time: clock.Wall(), SinceBoot: clock.SinceBoot(), BootID: clock.BootID}
	})
	log.Observe(hub.Record)
	return hub, nil
}
