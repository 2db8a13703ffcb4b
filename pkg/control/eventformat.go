// SPDX-License-Identifier: Apache-2.0

package control

import (
	"fmt"
	"io"

	"github.com/pwatch/pwatch/internal/quote"
	"github.com/pwatch/pwatch/pkg/events"
)

// EventTime is how padmin events dates an event: local time, as syslog
// stamps, to the millisecond (a recovery's events come within one second).
const EventTime = "Jan _2 15:04:05.000"

// FormatEvent writes one event as padmin events prints it, a line that
// needs no later event to be aligned (--follow prints each as it comes):
//
//	#41 Dec  6 22:40:01.123 web down: Process ['web',pid=412] Down
//
// The service and the text pass quote.Line: text from processes (a
// sender's comm) reaches the terminal quoted, whatever the history holds.
func FormatEvent(w io.Writer, e events.Event) error {
	svc := e.Service
	if svc == "" {
		svc = "-"
	}
	_, err := fmt.Fprintf(w, "#%d %s %s %s: %s\n", e.Seq, e.Time.Local().Format(EventTime),
		quote.Line(svc), quote.Line(e.Event), quote.Line(e.Text))
	return err
}
