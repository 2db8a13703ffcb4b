// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/msg"
	notifier "github.com/pwatch/pwatch/pkg/notify"
	"github.com/pwatch/pwatch/pkg/reboot"
	"github.com/pwatch/pwatch/pkg/trust"
)

// notifyBuffer is how many events the notifier's subscription holds for it:
// its intake never waits (the runner has its own queue), so it only falls
// behind when the scheduler does.
const notifyBuffer = 256

// newNotifier checks the --notify-* flags, even without a command, and the
// command against the trust rule as the scripts are at load; nil without
// --notify-command.
func newNotifier(cfg Config, log *msg.Logger) (*notifier.Notifier, error) {
	selected, err := notifier.ParseEvents(cfg.NotifyEvents)
	if err != nil {
		return nil, fmt.Errorf("--notify-events %w", err)
	}
	if cfg.NotifyBurst < 0 {
		return nil, fmt.Errorf("--notify-burst %d: want at least 1", cfg.NotifyBurst)
	}
	if cfg.NotifyPer < 0 {
		return nil, fmt.Errorf("--notify-per %s: want a positive duration", cfg.NotifyPer)
	}
	argv, err := reboot.SplitCommandLine(cfg.NotifyCommand)
	if err != nil {
		return nil, fmt.Errorf("--notify-command %q: %w", cfg.NotifyCommand, err)
	}
	if len(argv) == 0 {
		return nil, nil
	}
	if err := checkNotifyCommand(argv, cfg.SkipTrustCheck, log); err != nil {
		return nil, err
	}
	n, err := notifier.New(notifier.Config{
		Argv: argv, Events: selected, Burst: cfg.NotifyBurst, Per: cfg.NotifyPer,
		UnsafeSkipTrust: cfg.SkipTrustCheck,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("--notify-*: %w", err)
	}
	return n, nil
}

// checkNotifyCommand checks, at the start, that the command exists and
// passes the trust rule (it is checked again before each run); with
// --unsafe-skip-trust-check a refusal only warns.
func checkNotifyCommand(argv []string, skipTrust bool, log *msg.Logger) error {
	var (
		opened  *trust.Opened
		refusal *trust.Refusal
		err     error
	)
	if skipTrust {
		opened, refusal, err = trust.OpenAnyway(argv)
		if refusal != nil {
			log.Slog().Warn("trust rule off: accepted anyway", "problem", refusal.Why())
		}
	} else {
		opened, err = trust.Open(argv)
	}
	if err != nil {
		return fmt.Errorf("--notify-command: %w", err)
	}
	return opened.Close()
}

// startNotify feeds the event history to the notifier until ctx ends or
// the returned stop is called, which waits for its runner (a command still
// running is killed).
func (d *daemon) startNotify(ctx context.Context) (stop func()) {
	if d.notifier == nil {
		return func() {}
	}
	sub, _ := d.events.Subscribe(events.Filter{}, notifyBuffer)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.notifier.Run(ctx, sub)
	}()
	return func() {
		cancel()
		<-done
		sub.Close()
	}
}

// NotifyStats are the notifier's counts for the metrics; none without
// --notify-command.
func (m metricsSource) NotifyStats() (metrics.NotifyStats, bool) {
	if m.d.notifier == nil {
		return metrics.NotifyStats{}, false
	}
	s := m.d.notifier.Stats()
	return metrics.NotifyStats{Sent: s.Sent, Failed: s.Failed, Suppressed: s.Suppressed, Dropped: s.Dropped}, true
}
