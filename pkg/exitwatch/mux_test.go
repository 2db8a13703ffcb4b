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
	m := refusingMux(t)
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

// refusingMux is a Mux on refusingWatcher: no privilege needed.
func refusingMux(t *testing.T) *Mux {
	m := &Mux{
		w: refusingWatcher{done: make(chan struct{})}, procRoot: "/proc", poll: 10 * time.Millisecond,
		log:    testOptions(t).Logger,
		owners: map[proc.ID][]*View{}, execs: map[string][]*View{}, views: map[*View]struct{}{}, polled: map[proc.ID]struct{}{},
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// An exec reaches its executable's views from a list the Mux hands out
// past its lock (no copy per exec: a thousand services may share one
// executable). Views coming and going meanwhile must not change a list a
// delivery holds (-race sees it if they do), and a view watching
// throughout hears every exec.
func TestMuxExecListsChangeUnderDelivery(t *testing.T) {
	m := refusingMux(t)
	steady := newSinkLog()
	sv := m.NewView()
	sv.Attach(steady)
	if err := sv.WatchExec("/x"); err != nil {
		t.Fatal(err)
	}
	others := make([]*View, 8)
	for i := range others {
		others[i] = m.NewView()
		others[i].Attach(newSinkLog())
	}
	const execs = 2000
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		for i := range execs {
			m.deliver(Event{Kind: Exec, Exe: "/x", ID: proc.ID{PID: 1 << 30, StartTime: uint64(i)}})
		}
	}()
	for churning := true; churning; {
		for _, v := range others {
			if err := v.WatchExec("/x"); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range others {
			if err := v.UnwatchExec("/x"); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-delivered:
			churning = false
		default:
		}
	}
	steady.mu.Lock()
	defer steady.mu.Unlock()
	if len(steady.events) != execs {
		t.Errorf("the steady view heard %d of %d execs", len(steady.events), execs)
	}
}
