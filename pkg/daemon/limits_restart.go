// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// restartForLimit asks the supervisor for a gentle restart with the reason
// limit: SIGTERM to the tree, SIGKILL after grace, then the restart
// script with env (PWATCH_LIMIT, PWATCH_LIMIT_VALUE); line is logged when
// the request is taken.
func restartForLimit(ctx context.Context, s *supervise.Service, env []string, grace time.Duration, line msg.Message) error {
	return s.Restart(ctx, supervise.RestartRequest{Reason: supervise.ReasonLimit, Env: env, Grace: grace, Log: &line})
}
