// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// restartForLimit asks the supervisor for a gentle restart with the reason
// limit: SIGTERM to the tree, SIGKILL after grace, then the restart
// script with env; line is logged when the request is taken.
func restartForLimit(ctx context.Context, s *supervise.Service, env []string, grace time.Duration, line msg.Message) error {
	return errors.New("supervise has no Restart yet")
}
