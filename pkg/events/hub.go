// SPDX-License-Identifier: Apache-2.0

package events

import (
	"sync"
	"sync/atomic"

	"github.com/pwatch/pwatch/pkg/msg"
)

// DefaultKeep is how many events the history keeps.
const DefaultKeep = 1000

// Hub is the history and its subscribers. It is safe for concurrent use;
// Publish never blocks.
type Hub struct {
	now func() Stamp

	mu   sync.Mutex
	ring []Event // oldest first, at most keep
	keep int
	seq  uint64
	subs map[*Subscription]struct{}
	// sinks are called, in order, with every published event under mu (so
	// they see events in Seq order): the disk store. They must not block
	// for long.
	sinks []func(Event)
}

// NewHub keeps the last keep events (DefaultKeep when keep <= 0); now stamps
// them.
func NewHub(keep int, now func() Stamp) *Hub {
	if keep <= 0 {
		keep = DefaultKeep
	}
	return &Hub{now: now, keep: keep, subs: map[*Subscription]struct{}{}}
}

// Restore puts events read back from disk in the ring (oldest first), so the
// history survives a pcheck restart, and continues their numbering. Call it
// before the first Publish.
func (h *Hub) Restore(old []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range old {
		if e.Seq <= h.seq {
			continue // out of order or repeated: keep the first
		}
		h.seq = e.Seq
		h.appendLocked(e)
	}
}

// OnPublish adds a sink that sees every event from now on, in Seq order.
func (h *Hub) OnPublish(sink func(Event)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sinks = append(h.sinks, sink)
}

// Record publishes a catalogue message; it is msg.Logger's observer.
func (h *Hub) Record(m msg.Message) { h.Publish(FromMessage(m, h.now())) }

// Publish numbers e, keeps it and hands it to every subscriber and sink.
func (h *Hub) Publish(e Event) Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq = h.seq
	h.appendLocked(e)
	for _, sink := range h.sinks {
		sink(e)
	}
	for s := range h.subs {
		s.offer(e)
	}
	return e
}

func (h *Hub) appendLocked(e Event) {
	if len(h.ring) == h.keep {
		copy(h.ring, h.ring[1:])
		h.ring = h.ring[:h.keep-1]
	}
	h.ring = append(h.ring, e)
}

// Recent lists the kept events that pass f, oldest first.
func (h *Hub) Recent(f Filter) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.ring {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Subscribe starts a subscription to the events that pass f, buffering up
// to buf of them (at least 1) for a slow reader. backlog are the kept
// events that already pass f, so that a reader sees no gap between what
// it listed and what it is sent.
func (h *Hub) Subscribe(f Filter, buf int) (sub *Subscription, backlog []Event) {
	if buf < 1 {
		buf = 1
	}
	s := &Subscription{hub: h, filter: f, c: make(chan Event, buf)}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.ring {
		if f.Match(e) {
			backlog = append(backlog, e)
		}
	}
	h.subs[s] = struct{}{}
	return s, backlog
}

// Subscription is one reader of new events.
type Subscription struct {
	hub     *Hub
	filter  Filter
	c       chan Event
	dropped atomic.Uint64
	once    sync.Once
}

// C delivers the events; it is closed by Close.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped counts the events this reader lost because its buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription; C is closed and delivers nothing more.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		s.hub.mu.Unlock()
		close(s.c)
	})
}

// offer hands e over without waiting (under the hub's lock, so never after
// Close).
func (s *Subscription) offer(e Event) {
	if !s.filter.Match(e) {
		return
	}
	select {
	case s.c <- e:
	default:
		s.dropped.Add(1)
	}
}
