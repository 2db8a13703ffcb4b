// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// EventHub is the event history padmin events reads (control.EventSource).
func (d *daemon) EventHub() *events.Hub { return d.events }

// recordCommand puts a padmin command pcheck carried out in the event
// history. Its syslog line is padmin's (ident padmin), so it is recorded,
// not logged: syslog gets it once.
func (d *daemon) recordCommand(command, name string) {
	d.events.Record(msg.CommandExecute(command, name))
}

// Restart is padmin restart (control.Restarter): the service's usual
// recovery, reason operator, its processes stopped as its own recovery
// stops them (SIGTERM, SIGKILL after kill_timeout), so a server can shut
// down cleanly. Its Command execute. line is pcheck's, logged when the
// supervisor takes the restart on, so that it comes before the Down it
// causes.
func (d *daemon) Restart(ctx context.Context, name string) error {
	s, err := d.one(name)
	if err != nil {
		return err
	}
	line := msg.CommandExecute(msg.CommandRestart, name)
	return s.Restart(ctx, supervise.RestartRequest{
		Reason: supervise.ReasonOperator,
		Grace:  s.Config().KillTimeout,
		Log:    &line,
	})
}
