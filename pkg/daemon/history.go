// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// EventHub is the event history padmin events reads (control.EventSource).
func (d *daemon) EventHub() *events.Hub { return d.events }

// recordCommand puts a padmin command pcheck carried out in the event
// history. Its syslog line is padmin's (ident padmin), so it is recorded,
// not logged: syslog gets it once.
func (d *daemon) recordCommand(command, name string) {
	d.events.Record(msg.CommandExecute(command, name))
}
