package exitwatch

import "sync"

// eventQueue decouples a backend from its consumer: push never blocks (so
// Watch may report an exit at once, even from the goroutine that reads
// Events), and events come out in the order pushed. It is unbounded: a
// consumer that stops reading while watching is a bug, and events are
// small.
type eventQueue struct {
	out  chan Event
	done chan struct{}

	mu      sync.Mutex
	items   []Event
	wake    chan struct{} // 1-buffered: "items is not empty"
	closed  bool
	stopped chan struct{}
}

func newEventQueue() *eventQueue {
	q := &eventQueue{
		out:     make(chan Event),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	go q.forward()
	return q
}

// push queues ev; after close it is dropped.
func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
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
}
