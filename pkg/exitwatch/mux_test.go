// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// sinkLog is a Sink that keeps what it is told.
type sinkLog struct {
	mu      sync.Mutex
	events  []Event
	resyncs int
	more    chan struct{}
}

func newSinkLog() *sinkLog { return &sinkLog{more: make(chan struct{}, 1)} }

func (s *sinkLog) Exited(ev Event) { s.add(ev) }
func (s *sinkLog) Execed(ev Event) { s.add(ev) }
func (s *sinkLog) Resync() {
	s.mu.Lock()
	s.resyncs++
	s.mu.Unlock()
}

func (s *sinkLog) add(ev Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
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

func openMux(t *testing.T, backend string) *Mux {
	t.Helper()
	m, err := OpenMux(backend, testOptions(t))
	if errors.Is(err, ErrNotSupported) {
		testpriv.Unavailable(t, backend+": "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Two views watching one process both hear of its death, and one
// unwatching does not blind the other.
func TestMuxSharesOneProcess(t *testing.T) {
	testpriv.Root(t)
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			m := openMux(t, backend)
			a, b, c := newSinkLog(), newSinkLog(), newSinkLog()
			va, vb, vc := m.NewView(), m.NewView(), m.NewView()
			va.Attach(a)
			vb.Attach(b)
			vc.Attach(c)
			p := testproc.Sleep(t)
			for _, v := range []*View{va, vb, vc} {
				v.Watch(proc.Match{Process: proc.Process{ID: p.ID}})
			}
			vc.Unwatch(p.ID)
			p.Signal(syscall.SIGKILL)
			for _, s := range []*sinkLog{a, b} {
				if ev := s.waitExit(t, p.ID); !ev.Known || ev.Signal != int(syscall.SIGKILL) {
					t.Errorf("exit %+v, want SIGKILL", ev)
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.events) != 0 {
				t.Errorf("the view that unwatched got %+v", c.events)
			}
		})
	}
}

// refusingWatcher is a backend whose map is full: every Watch fails.
type refusingWatcher struct{ out chan Event }

func (refusingWatcher) Name() string             { return "refusing" }
func (refusingWatcher) Watch(proc.ID) error      { return errors.New("map full") }
func (refusingWatcher) Unwatch(proc.ID) error    { return nil }
func (refusingWatcher) WatchExec(string) error   { return nil }
func (refusingWatcher) UnwatchExec(string) error { return nil }
func (w refusingWatcher) Events() <-chan Event   { return w.out }
func (w refusingWatcher) Close() error           { close(w.out); return nil }

// A process the backend refuses is polled by the Mux: its death still
// reaches the view, which never sees the refusal.
func TestMuxPollsARefusedWatch(t *testing.T) {
	m := &Mux{
		w: refusingWatcher{out: make(chan Event)}, procRoot: "/proc", poll: 10 * time.Millisecond,
		log: testOptions(t).Logger, done: make(chan struct{}),
		owners: map[proc.ID][]*View{}, execs: map[string][]*View{}, views: map[*View]struct{}{}, polled: map[proc.ID]struct{}{},
	}
	t.Cleanup(func() { m.Close() })
	s := newSinkLog()
	v := m.NewView()
	v.Attach(s)
	p := testproc.Sleep(t)
	v.Watch(proc.Match{Process: proc.Process{ID: p.ID}})
	p.Signal(syscall.SIGKILL)
	s.waitExit(t, p.ID)
	if _, ok := v.Tree(p.ID); ok {
		t.Error("a backend without trees answered Tree")
	}
}
