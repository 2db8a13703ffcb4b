// SPDX-License-Identifier: Apache-2.0

// Package sdnotify tells systemd how pcheck is doing (Type=notify):
// READY=1 once it watches its services, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 on the way out, and WATCHDOG=1 while its main loop is
// alive. It wraps coreos/go-systemd's daemon package; every call is a
// no-op returning nil when pcheck was not started by systemd (no
// NOTIFY_SOCKET).
package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// NOTIFY_SOCKET is left in the environment (unsetEnvironment false): the
// watchdog and later notifications need it. Restart scripts inherit it,
// and systemd ignores what they send as long as the unit keeps
// NotifyAccess=main.
func notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.ReplaceAll(state, "\n", " "), err)
	}
	return nil
}

// Ready says start-up (or a reload) is done: the services are watched and
// the control socket answers.
func Ready() error { return notify(daemon.SdNotifyReady) }

// Stopping says pcheck is shutting down (its services stay up).
func Stopping() error { return notify(daemon.SdNotifyStopping) }

// Reloading says a reload began; call Ready when it is over, whether or
// not the new pfiles were accepted. MONOTONIC_USEC is what systemd wants
// with it for Type=notify-reload; plain Type=notify ignores it.
func Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sd_notify RELOADING=1: %w", err)
	}
	return notify(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, ts.Nano()/1000))
}

// Status sets the one-line status `systemctl status` shows.
func Status(text string) error {
	return notify("STATUS=" + strings.ReplaceAll(text, "\n", " "))
}

// Watchdog pings systemd's watchdog (WATCHDOG=1) at half the unit's
// WatchdogSec until ctx ends, but only while healthy says the daemon's loop
// is alive (nil: always): a stuck pcheck stops pinging, and systemd
// restarts it. log (nil: none) hears when pings stop and resume. It
// returns at once, nil, when the watchdog is off for this process; an
// error only when systemd's watchdog variables are malformed.
func Watchdog(ctx context.Context, healthy func() bool, log *slog.Logger) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return fmt.Errorf("systemd watchdog: %w", err)
	}
	if interval <= 0 {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	withheld := false
	for {
		switch ok := healthy == nil || healthy(); {
		case ok:
			if withheld {
				log.Info("watchdog pings resumed")
				withheld = false
			}
			if err := notify(daemon.SdNotifyWatchdog); err != nil {
				log.Warn("watchdog ping failed", "error", err)
			}
		case !withheld:
			log.Warn("daemon loop not healthy: watchdog pings withheld", "watchdog", interval)
			withheld = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
