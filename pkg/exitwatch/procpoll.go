// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/pwatch/pwatch/pkg/proc"
)

// The proc backend polls /proc every Options.PollInterval: a watched
// process that is missing, has another start time, or is a zombie is
// reported as exited (with its status while it is a zombie). Detection
// latency is up to one interval; it needs nothing but a readable /proc.
func init() {
	register(backend{name: "proc", rank: 3, probe: probeProc, open: openProc})
}

func probeProc(opt Options) error {
	_, err := proc.ReadStat(opt.ProcRoot, os.Getpid())
	if errors.Is(err, proc.ErrGone) { // no stat of pcheck's own there
		return fmt.Errorf("%s is not a procfs mount: %w (%w)", opt.ProcRoot, ErrNotSupported, err)
	}
	return err
}

type procPoller struct {
	heartbeat
	*outlet
	opt  Options
	exec *execPoller

	mu      sync.Mutex
	watched map[proc.ID]struct{}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func openProc(opt Options, sink Sink) (Watcher, error) {
	if err := probeProc(opt); err != nil {
		return nil, err
	}
	w := &procPoller{
		outlet:  newOutlet(sink),
		opt:     opt,
		watched: map[proc.ID]struct{}{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	w.exec = newExecPoller(opt, w.push)
	go w.loop()
	return w, nil
}

func (w *procPoller) Name() string             { return "proc" }
func (w *procPoller) WatchExec(p string) error { return w.exec.add(p) }

func (w *procPoller) UnwatchExec(p string) error {
	w.exec.remove(p)
	return nil
}

func (w *procPoller) Watch(id proc.ID) error {
	if err := validID(id); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watched[id]; ok {
		return nil
	}
	if alive, ev := checkAlive(w.opt.ProcRoot, id); !alive {
		w.push(ev)
		return nil
	}
	w.watched[id] = struct{}{}
	return nil
}

func (w *procPoller) Unwatch(id proc.ID) error {
	w.mu.Lock()
	delete(w.watched, id)
	w.mu.Unlock()
	return nil
}

func (w *procPoller) loop() {
	defer close(w.done)
	t := time.NewTicker(min(w.opt.PollInterval, ReaderWakeEvery))
	defer t.Stop()
	last := time.Now()
	for {
		w.beat()
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			if now.Sub(last) >= w.opt.PollInterval {
				last = now
				w.poll()
			}
		}
	}
}

// poll checks every watched identity. The reads run outside the lock so
// Watch is not held up; an identity unwatched meanwhile is not reported.
func (w *procPoller) poll() {
	w.mu.Lock()
	ids := make([]proc.ID, 0, len(w.watched))
	for id := range w.watched {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		alive, ev := checkAlive(w.opt.ProcRoot, id)
		if alive {
			continue
		}
		w.mu.Lock()
		if _, ok := w.watched[id]; ok {
			delete(w.watched, id)
			w.push(ev)
		}
		w.mu.Unlock()
	}
}

func (w *procPoller) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.exec.close()
		w.outlet.close()
	})
	return nil
}
