// SPDX-License-Identifier: Apache-2.0

package exitwatch

import "sync"

// outlet is a backend's one way out: it hands each event to the Sink the
// backend was opened with, on the goroutine that saw the event (the
// reader, or the caller of Watch), and tells when the backend has ended.
// Once close has returned nothing more is handed on.
type outlet struct {
	sink Sink
	done chan struct{}

	// mu is held for reading while an event is handed on, so close waits
	// for the ones under way.
	mu     sync.RWMutex
	closed bool
}

func newOutlet(sink Sink) *outlet {
	return &outlet{sink: sink, done: make(chan struct{})}
}

// push hands ev to the sink; after close it is dropped. The sink must not
// block (see Sink), so a backend may push while holding its own lock.
func (o *outlet) push(ev Event) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return
	}
	if ev.Kind == Exec {
		o.sink.Execed(ev)
	} else {
		o.sink.Exited(ev)
	}
}

// resync tells the sink that events may have been lost.
func (o *outlet) resync() {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if !o.closed {
		o.sink.Resync()
	}
}

// Done is closed once the backend has ended: closed by its owner, or on
// its own when its event source failed.
func (o *outlet) Done() <-chan struct{} { return o.done }

// close ends the outlet; calling it again does nothing.
func (o *outlet) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		close(o.done)
	}
}
