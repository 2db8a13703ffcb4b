// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"os"

	"github.com/pwatch/pwatch/pkg/web"
)

// statusPage is --web-listen's page: the status padmin status gets (the
// daemon answers both) and the event history. Its streams may take half of
// the listener's maxConns connections, so that the page itself always
// finds a place.
func (d *daemon) statusPage(maxConns int) *web.Page {
	host, err := os.Hostname()
	if err != nil {
		host = ""
	}
	return web.New(web.Options{
		Status: d, Events: d.events, Host: host,
		MaxStreams: max(maxConns/2, 1), Logger: d.log.Slog(),
	})
}
