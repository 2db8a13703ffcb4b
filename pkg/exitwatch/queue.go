// SPDX-License-Identifier: Apache-2.0

package exitwatch

import "sync"

// eventQueue decouples a backend from its consumer: push never blocks (so
// Watch may report an exit at once, even from the goroutine that reads
// Events), and events come out in the order pushed. It is unbounded: a
// consumer that stops reading while watching is a bug, and events are
// small.
//
// With a deliver function (a Mux) there is no queue: push hands each event
// straight to it, on the goroutine that saw the event, and Events only
// closes when the backend ends. deliver must never block.
type eventQueue struct {
	out     chan Event
	done    chan struct{}
	deliver func(Event)

	mu      sync.Mutex
	items   []Event
	wake    chan struct{} // 1-buffered: "items is not empty"
	closed  bool
	stopped chan struct{}
}

func newEventQueue(deliver func(Event)) *eventQueue {
	q := &eventQueue{
		out:     make(chan Event),
		done:    make(chan struct{}),
		deliver: deliver,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	if deliver != nil {
		close(q.stopped)
		return q
	}
	go q.forward()
	return q
}

// push queues ev; after close it is dropped.
func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if q.deliver != nil {
		q.mu.Unlock()
		q.deliver(ev)
		return
	}
	defer q.mu.Unlock()
	q.items = append(q.items, ev)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) forward() {
	defer close(q.stopped)
	defer close(q.out)
	for {
		q.mu.Lock()
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		for _, ev := range batch {
			select {
			case q.out <- ev:
			case <-q.done:
				return
			}
		}
		select {
		case <-q.wake:
		case <-q.done:
			return
		}
	}
}

// close drops what is still queued and closes the output channel.
func (q *eventQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.done)
	<-q.stopped
	if q.deliver != nil {
		close(q.out)
	}
}
