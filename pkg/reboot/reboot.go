// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrThresholdReached is the guard refusing a reboot because the threshold's
// number of reboots already happened within the window.
var ErrThresholdReached = errors.New("reboot threshold reached")

// Runner reboots the node; Command is the real one, tests record calls.
type Runner interface {
	Run(ctx context.Context) ([]byte, error)
}

// Reboot reboots the node on service's behalf if the guard allows it. It
// returns ErrThresholdReached when the count forbids it, the guard's error
// (ErrBadState, a failed write) when the state file does, and the command's
// error when the reboot command failed; in all those cases the node is not
// rebooting and the caller goes on as with retry_over_action continue. A
// reboot whose command failed stays counted: a command that cannot reboot
// must not loop either.
func Reboot(ctx context.Context, g *Guard, r Runner, service string, log *slog.Logger) error {
	ok, err := g.Allow(service)
	if err != nil {
		return err
	}
	if !ok {
		return ErrThresholdReached
	}
	log.Info("rebooting the node", "service", service, "command", fmt.Sprint(r))
	out, err := r.Run(ctx)
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		log.Info("reboot command output", "service", service, "output", s)
	}
	return nil
}
