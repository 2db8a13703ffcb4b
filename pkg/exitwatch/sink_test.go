// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/proc"
)

// sinkLog is a Sink that keeps what it is told, in order, for tests to
// read: next takes the events one by one, waitExit finds one.
type sinkLog struct {
	mu      sync.Mutex
	events  []Event
	resyncs int
	taken   int // events next has returned
	more    chan struct{}
}

func newSinkLog() *sinkLog { return &sinkLog{more: make(chan struct{}, 1)} }

func (s *sinkLog) Exited(ev Event) { s.add(ev) }
func (s *sinkLog) Execed(ev Event) { s.add(ev) }
func (s *sinkLog) Resync() {
	s.mu.Lock()
	s.resyncs++
	s.mu.Unlock()
	s.wake()
}

func (s *sinkLog) add(ev Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	s.wake()
}

func (s *sinkLog) wake() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// resyncCount is how many resyncs the sink was told.
func (s *sinkLog) resyncCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resyncs
}

// count is how many events the sink was told.
func (s *sinkLog) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// next returns the first event not returned yet, waiting for it until
// the deadline; false when ended (a backend's Done) closed first or the
// deadline passed.
func (s *sinkLog) next(deadline <-chan time.Time, ended <-chan struct{}) (Event, bool) {
	for {
		s.mu.Lock()
		if s.taken < len(s.events) {
			ev := s.events[s.taken]
			s.taken++
			s.mu.Unlock()
			return ev, true
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-ended:
			return Event{}, false
		case <-deadline:
			return Event{}, false
		}
	}
}

func (s *sinkLog) waitExit(t *testing.T, id proc.ID) Event {
	t.Helper()
	deadline := time.After(eventDeadline)
	for {
		s.mu.Lock()
		i := slices.IndexFunc(s.events, func(ev Event) bool { return ev.Kind == Exit && ev.ID == id })
		var ev Event
		if i >= 0 {
			ev = s.events[i]
		}
		s.mu.Unlock()
		if i >= 0 {
			return ev
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("no exit of %v reached the sink", id)
		}
	}
}
