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

	mu    sync.Mutex
	ring  []Event // at most keep; once full, the oldest is at ring[start]
	start int
	keep  int
	seq   uint64
	subs  map[*Subscription]struct{}
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

// appendLocked keeps e, in place of the oldest once the ring is full (a
// copy of the whole ring at each event would cost microseconds in every
// logged line).
func (h *Hub) appendLocked(e Event) {
	if len(h.ring) < h.keep {
		h.ring = append(h.ring, e)
		return
	}
	h.ring[h.start] = e
	h.start = (h.start + 1) % h.keep
}

// matchingLocked are the kept events that pass f, oldest first.
func (h *Hub) matchingLocked(f Filter) []Event {
	var out []Event
	for i := range h.ring {
		if e := h.ring[(h.start+i)%len(h.ring)]; f.Match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Recent lists the kept events that pass f, oldest first.
func (h *Hub) Recent(f Filter) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.matchingLocked(f)
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
	h.subs[s] = struct{}{}
	return s, h.matchingLocked(f)
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
