// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

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
type refusingWatcher struct{ done chan struct{} }

func (refusingWatcher) Name() string             { return "refusing" }
func (refusingWatcher) Watch(proc.ID) error      { return errors.New("map full") }
func (refusingWatcher) Unwatch(proc.ID) error    { return nil }
func (refusingWatcher) WatchExec(string) error   { return nil }
func (refusingWatcher) UnwatchExec(string) error { return nil }
func (w refusingWatcher) Done() <-chan struct{}  { return w.done }
func (refusingWatcher) LastWake() time.Duration  { return 0 }
func (w refusingWatcher) Close() error           { close(w.done); return nil }

// A process the backend refuses is polled by the Mux: its death still
// reaches the view, which never sees the refusal.
func TestMuxPollsARefusedWatch(t *testing.T) {
	m := &Mux{
		w: refusingWatcher{done: make(chan struct{})}, procRoot: "/proc", poll: 10 * time.Millisecond,
		log:    testOptions(t).Logger,
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
