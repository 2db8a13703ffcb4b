// SPDX-License-Identifier: Apache-2.0

// Package notify runs the operator's notification command (--notify-command)
// for the events of pcheck's history they chose (--notify-events): a mail,
// a webhook. It must never slow a recovery: events are taken from a
// subscription that loses rather than waits, rate-limited per service,
// and queued (bounded: a full queue drops, counted) for one runner that
// runs one command at a time, each within its own timeout.
package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// Defaults of Config.
const (
	DefaultBurst = 5
	DefaultPer   = 10 * time.Minute
	// DefaultTimeout bounds one run of the command: a mail handed to the
	// local MTA or a webhook POST takes a second or two; past this the
	// command's process group is killed and the run counted as failed.
	DefaultTimeout = 30 * time.Second
	// DefaultQueue is how many notifications wait for the runner at most.
	DefaultQueue = 64
	// endedWait is how long a Down waits for its Ended line (logged right
	// after it), whose cause the notification carries.
	endedWait = time.Second
)

// Config is what to run and for what.
type Config struct {
	// Argv is the command, run without a shell.
	Argv []string
	// Events are the event names to notify (ParseEvents).
	Events []string
	// Burst notifications per service at most within Per (0: defaults).
	Burst int
	Per   time.Duration
	// Timeout bounds each run (0: DefaultTimeout).
	Timeout time.Duration
	// Queue bounds the notifications waiting (0: DefaultQueue).
	Queue int
	// UnsafeSkipTrust runs the command even when the trust rule refuses it
	// just before (--unsafe-skip-trust-check: tests only).
	UnsafeSkipTrust bool
}

// Notification is one run of the command: the event (for a Down, with its
// Ended line's cause fields merged in), as JSON on the command's stdin.
type Notification struct {
	events.Event
	// Detail is, for a Down, its Ended line: how and why it ended.
	Detail string `json:"detail,omitempty"`
	// Host is the node's name.
	Host string `json:"host"`
}

// Stats count what became of the events selected.
type Stats struct {
	// Sent and Failed count the command's runs (failed: refused, not
	// started, a non-zero exit or killed at its timeout).
	Sent, Failed uint64
	// Suppressed counts events over the rate limit (said in summaries).
	Suppressed uint64
	// Dropped counts notifications lost to a full queue, and events the
	// notifier's subscription lost.
	Dropped uint64
}

// Feed is where the events come from (an events.Subscription).
type Feed interface {
	C() <-chan events.Event
	Dropped() uint64
}

// Notifier turns events into runs of the command.
type Notifier struct {
	cfg      Config
	selected map[string]bool
	host     string
	log      *msg.Logger
	exec     func(context.Context, Notification) error

	sent, failed, suppressed, dropped atomic.Uint64
	feedDropped                       atomic.Pointer[func() uint64]
}

// New checks cfg and returns its Notifier. log gets the failures (and the
// trust rule's `Program refused` line).
func New(cfg Config, log *msg.Logger) (*Notifier, error) {
	if len(cfg.Argv) == 0 {
		return nil, errors.New("no notify command")
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Per == 0 {
		cfg.Per = DefaultPer
	}
	if cfg.Burst < 1 {
		return nil, fmt.Errorf("notify burst %d: want at least 1", cfg.Burst)
	}
	if cfg.Per < time.Second {
		return nil, fmt.Errorf("notify window %s: want at least 1s", cfg.Per)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	n := &Notifier{cfg: cfg, selected: map[string]bool{}, log: log}
	for _, e := range cfg.Events {
		n.selected[e] = true
	}
	n.host, _ = os.Hostname()
	n.exec = n.runCommand
	return n, nil
}

// Stats is a snapshot of the counts.
func (n *Notifier) Stats() Stats {
	s := Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Suppressed: n.suppressed.Load(), Dropped: n.dropped.Load()}
	if f := n.feedDropped.Load(); f != nil {
		s.Dropped += (*f)()
	}
	return s
}

// Run notifies the events of feed until ctx ends or the feed closes, then
// waits for the runner: a command still running is killed with ctx.
func (n *Notifier) Run(ctx context.Context, feed Feed) {
	d := feed.Dropped
	n.feedDropped.Store(&d)
	ctx, cancel := context.WithCancel(ctx)
	queue := make(chan Notification, n.cfg.Queue)
	var wg sync.WaitGroup
	wg.Go(func() { n.runner(ctx, queue) })
	defer wg.Wait()
	defer cancel()
	in := intake{n: n, queue: queue, limit: newLimiter(n.cfg.Burst, n.cfg.Per), pending: map[string]*pendingDown{}}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		in.arm(timer)
		select {
		case <-ctx.Done():
			return
		case e, ok := <-feed.C():
			if !ok {
				return
			}
			in.take(e, time.Now())
		case <-timer.C:
			in.tick(time.Now())
		}
	}
}

// runner runs the queued notifications one at a time.
func (n *Notifier) runner(ctx context.Context, queue <-chan Notification) {
	for {
		select {
		case <-ctx.Done():
			return
		case note := <-queue:
			if err := n.exec(ctx, note); err != nil {
				n.failed.Add(1)
				n.log.Slog().Error("notify command failed", "service", note.Service, "notify_event", note.Event.Event, "error", err)
				continue
			}
			n.sent.Add(1)
		}
	}
}
