// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/reboot"
)

// newEventHub starts the event history: the events kept in stateDir are
// read back (docs/behaviour.md, "Event history"), and from now on every
// catalogue line log writes is also an event, stamped on the wall clock
// and CLOCK_BOOTTIME, and appended there. Nothing in the kept history
// stops pcheck: without a state dir, or when it cannot be written, the
// history is kept in memory only. The caller detaches the hub
// (log.Observe(nil)) and then closes the store (if not nil) when pcheck's
// run ends.
func newEventHub(log *msg.Logger, stateDir string) (*events.Hub, *events.Store, error) {
	clock, err := reboot.SystemClock(time.Now)
	if err != nil {
		return nil, nil, err
	}
	hub := events.NewHub(events.DefaultKeep, func() events.Stamp {
		return events.Stamp{Time: clock.Wall(), SinceBoot: clock.SinceBoot(), BootID: clock.BootID}
	})
	var store *events.Store
	if stateDir != "" {
		var old []events.Event
		store, old, err = events.OpenStore(stateDir, events.DefaultKeep, log.Slog())
		hub.Restore(old)
		if err != nil {
			log.Slog().Warn("the event history is kept in memory only: a pcheck restart forgets it", "error", err)
		} else {
			hub.OnPublish(store.Append)
		}
	}
	log.Observe(hub.Record)
	return hub, store, nil
}

// announcedReboot is the reboot command with its Rebooting line logged just
// before it runs: only once the guard has allowed it.
type announcedReboot struct {
	cmd     reboot.Runner
	log     *msg.Logger
	service string
}

func (r announcedReboot) Run(ctx context.Context) ([]byte, error) {
	r.log.Log(msg.Rebooting(r.service))
	return r.cmd.Run(ctx)
}

func (r announcedReboot) String() string { return fmt.Sprint(r.cmd) }
