// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"maps"
	"strconv"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
)

// intake is Run's loop state: which events become notifications, the rate
// limit, and the queue to the runner. Only Run's goroutine touches it.
type intake struct {
	n       *Notifier
	queue   chan<- Notification
	limit   *limiter
	pending map[string]*pendingDown // by service
	// dropping: the queue was full at the last try (logged once per run
	// of drops).
	dropping bool
}

// pendingDown is a Down waiting for its Ended line.
type pendingDown struct {
	note  Notification
	until time.Time
}

// take handles one event of the history at now.
func (in *intake) take(e events.Event, now time.Time) {
	in.tick(now)
	if e.Event == "ended" {
		if p := in.pending[e.Service]; p != nil && p.note.PID == e.PID {
			delete(in.pending, e.Service)
			in.offer(withEnding(p.note, e), now)
		}
		if in.n.selected[e.Event] {
			in.offer(in.note(e), now)
		}
		return
	}
	if p := in.pending[e.Service]; p != nil { // its Ended never came
		delete(in.pending, e.Service)
		in.offer(p.note, now)
	}
	switch {
	case !in.n.selected[e.Event]:
	case e.Event == "down":
		in.pending[e.Service] = &pendingDown{note: in.note(e), until: now.Add(endedWait)}
	default:
		in.offer(in.note(e), now)
	}
}

// tick sends what is due at now: Downs whose Ended did not come, and the
// summaries of windows that ended.
func (in *intake) tick(now time.Time) {
	for service, p := range in.pending {
		if !now.Before(p.until) {
			delete(in.pending, service)
			in.offer(p.note, now)
		}
	}
	for _, s := range in.limit.due(now) {
		in.enqueue(in.summary(s))
	}
}

// arm sets timer for the next thing due (a timer already fired is reset).
func (in *intake) arm(timer *time.Timer) {
	next := in.limit.next()
	for _, p := range in.pending {
		if next.IsZero() || p.until.Before(next) {
			next = p.until
		}
	}
	if next.IsZero() {
		timer.Stop()
		return
	}
	timer.Reset(time.Until(next))
}

// offer sends note unless the service's rate limit holds it back.
func (in *intake) offer(note Notification, now time.Time) {
	if !in.limit.allow(note.Service, now) {
		in.n.suppressed.Add(1)
		return
	}
	in.enqueue(note)
}

// enqueue hands note to the runner, or drops it when the queue is full:
// never a wait.
func (in *intake) enqueue(note Notification) {
	select {
	case in.queue <- note:
		if in.dropping {
			in.dropping = false
			in.n.log.Slog().Info("notify queue has room again", "dropped_total", in.n.dropped.Load())
		}
	default:
		in.n.dropped.Add(1)
		if !in.dropping {
			in.dropping = true
			in.n.log.Slog().Warn("notify queue full: notifications dropped until the command catches up", "queue", cap(in.queue), "service", note.Service, "notify_event", note.Event.Event)
		}
	}
}

func (in *intake) note(e events.Event) Notification {
	return Notification{Event: e, Host: in.n.host}
}

// summary is the notification of a window that suppressed events.
func (in *intake) summary(s summary) Notification {
	per := in.n.cfg.Per
	return Notification{Host: in.n.host, Event: events.Event{
		Time:    time.Now(),
		Event:   Suppressed,
		Service: s.service,
		Text:    summaryText(s.service, s.suppressed, per),
		Fields:  map[string]string{"suppressed": strconv.Itoa(s.suppressed), "window": per.String()},
	}}
}

// withEnding adds the Ended line of a Down to its notification: its text as
// Detail, its fields (cause, exit_status, signal...) to the Down's.
func withEnding(note Notification, ended events.Event) Notification {
	fields := maps.Clone(note.Fields)
	if fields == nil {
		fields = map[string]string{}
	}
	maps.Copy(fields, ended.Fields)
	note.Fields = fields
	note.Detail = ended.Text
	return note
}
