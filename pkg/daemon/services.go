// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/limits"
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/msg"
	notifier "github.com/pwatch/pwatch/pkg/notify"
	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/probe"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/reboot"
	"github.com/pwatch/pwatch/pkg/runstate"
	"github.com/pwatch/pwatch/pkg/sdnotify"
	"github.com/pwatch/pwatch/pkg/starve"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// daemon holds the running supervisors: it starts, replaces and stops them
// (reload), and answers padmin (control.Handler).
type daemon struct {
	rules      ruleSource
	log        *msg.Logger
	table      *proc.Table
	snaps      *proc.Snapshots // every service's reads of /proc, shared
	mux        *exitwatch.Mux
	guard      *reboot.Guard
	runs       *runstate.Store // what a successor learns of this pcheck's processes
	store      *opstate.Store  // Paused and RetryOver across pcheck restarts
	clock      supervise.Clock
	rebootNode func(ctx context.Context, service string) error
	ctx        context.Context  // supervisors run until it ends
	ending     chan struct{}    // a retry-over action asks pcheck to end
	endCode    atomic.Int64     // with the highest status asked for
	metrics    *metrics.Metrics // nil unless --metrics-listen
	limits     *limits.Sampler  // the services' resource limits (limits.go)
	events     *events.Hub      // the event history
	history    *events.Store    // and its copy in the state dir; nil: none

	notifier *notifier.Notifier // nil unless --notify-command

	mu       sync.Mutex // serialises reloads and guards services
	services map[string]*running
	// returnMemoryLocked's timer, when it gives memory back at the
	// latest, and the heap's allocations at its last look (memory.go).
	memReturn    *time.Timer
	memReturnBy  time.Time
	memAllocated uint64
}

// running is one supervisor and what it takes to stop it.
type running struct {
	svc    *supervise.Service
	view   *exitwatch.View
	ctx    context.Context // the supervisor's
	cancel context.CancelFunc
}

// startLocked makes the supervisor of cfg, its exec watch set: from
// carried, the history of the supervisor a reload replaces; else as the
// state store left it. runLocked starts it, with those made with it. d.mu
// is held.
func (d *daemon) startLocked(cfg *pfile.Service, m proc.Matcher, carried *supervise.History) *running {
	// Granted: what its own restart script starts (Processes.Grant).
	m.Granted = new(proc.Grants)
	view := d.mux.NewView()
	var runs supervise.RunState // never a nil *Store in the interface
	if d.runs != nil {
		runs = d.runs
	}
	svc := supervise.New(cfg, supervise.Deps{
		Processes: serviceProcesses{table: d.table, snaps: d.snaps, matcher: m, perPID: m.PerPID()},
		Watcher:   view,
		Log:       d.log,
		Slog:      d.log.Slog(),
		Clock:     d.clock,
		Exit:      d.endWith,
		Reboot:    d.rebootNode,
		// ListenCheck: sock_diag, for blocks with listen_check yes.
		ListenCheck: listenCheck,
		Observer:    d.observer(),
		Memory:      d.memory(),
		// Starvation: a probe that failed while the server waited for
		// the CPU is not counted towards a stall.
		Starvation: starvation,
		RunState:   runs,
		// Tests only: the trust rule's refusals before a run only warn.
		UnsafeSkipTrust: d.rules.skipTrust,
	})
	view.Attach(svc)
	switch {
	case carried != nil:
		svc.Carry(*carried)
	case d.store != nil:
		if e, ok := d.store.Get(cfg.Name); ok {
			svc.Restore(e)
			d.log.Slog().Warn("the service is left as before pcheck restarted: padmin start NAME resumes it",
				"service", cfg.Name, "state", e.State, "since", e.Since, "state_file", d.store.Path())
		}
	}
	if err := view.WatchExec(cfg.Process); err != nil {
		d.log.Slog().Warn("no exec events for this service: restarts are found by scanning", "service", cfg.Name, "error", err)
	}
	ctx, cancel := context.WithCancel(d.ctx)
	r := &running{svc: svc, view: view, ctx: ctx, cancel: cancel}
	d.services[cfg.Name] = r
	return r
}

// runLocked starts the supervisors startLocked made. Their watches are
// all set now: their first looks share one read of /proc begun from here
// on. d.mu is held.
func (d *daemon) runLocked(rs []*running) {
	since := time.Now()
	for _, r := range rs {
		r.svc.Supervise(r.ctx, since)
	}
	if len(rs) > 0 {
		d.limits.Wake() // they may have limits: the sampler wakes if it slept
		d.returnMemoryLocked()
	}
}

// stopLocked stops supervising name, leaving its processes alone. d.mu is
// held.
func (d *daemon) stopLocked(name string) {
	r := d.services[name]
	r.cancel()
	<-r.svc.Ended()
	r.view.Close()
	delete(d.services, name)
}

// observer is what supervisors report restarts, stalls and probes to.
func (d *daemon) observer() supervise.Observer {
	if d.metrics == nil {
		return nil
	}
	return d.metrics
}

// memory is where supervisors keep Paused and RetryOver.
func (d *daemon) memory() supervise.Memory {
	if d.store == nil {
		return nil
	}
	return d.store
}

func (d *daemon) stopAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name := range d.services {
		d.stopLocked(name)
	}
}

// endWith asks pcheck to end with code. When two services ask at once, the
// higher status wins: an exit (3) meant for a cluster manager must never
// become a shutdown's 0.
func (d *daemon) endWith(code int) {
	for {
		cur := d.endCode.Load()
		if int64(code) <= cur || d.endCode.CompareAndSwap(cur, int64(code)) {
			break
		}
	}
	select {
	case d.ending <- struct{}{}:
	default:
	}
}

// Reload re-reads every pfile. Any error refuses the whole reload and the
// running rules stay. Otherwise added pfiles are watched, removed ones no
// longer (their processes left alone), and changed ones get a new
// supervisor that adopts the running service without restarting it and
// goes on with the old one's history (attempts, backoff, Paused, RetryOver,
// a recovery under way). Only effective rules count: a comment or a moved
// block changes nothing. With a name, only that service is touched.
func (d *daemon) Reload(ctx context.Context, name string) []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Another reload may have held d.mu for long: a padmin gone meanwhile
	// gets nothing done on its behalf.
	if err := ctx.Err(); err != nil {
		return []error{fmt.Errorf("reload not done: %w", err)}
	}
	notify(d.log.Slog(), sdnotify.Reloading)
	defer notify(d.log.Slog(), sdnotify.Ready)
	svcs, matchers, err := d.rules.load(d.log)
	if err != nil {
		errs := flatten(err)
		d.log.Slog().Error("reload refused; the running rules stay", "errors", err)
		d.log.Log(msg.ReloadRefused(name, len(errs)))
		return errs
	}
	if name != "" {
		if _, ok := d.services[name]; !ok && !slices.ContainsFunc(svcs, func(s *pfile.Service) bool { return s.Name == name }) {
			return []error{fmt.Errorf("no pfile for service %q", name)}
		}
	}
	wanted := map[string]bool{}
	var started []*running
	defer func() { d.runLocked(started) }()
	for i, cfg := range svcs {
		wanted[cfg.Name] = true
		if name != "" && cfg.Name != name {
			continue
		}
		old, ok := d.services[cfg.Name]
		switch {
		case !ok:
			d.log.Slog().Info("reload: watching a new service", "service", cfg.Name)
			started = append(started, d.startLocked(cfg, matchers[i], nil))
		case !reflect.DeepEqual(old.svc.Config().Rules().Effective(), cfg.Rules().Effective()):
			d.log.Slog().Info("reload: the service's rules changed", "service", cfg.Name)
			d.stopLocked(cfg.Name)
			h := old.svc.History()
			started = append(started, d.startLocked(cfg, matchers[i], &h))
		}
	}
	for n := range d.services {
		if !wanted[n] && (name == "" || n == name) {
			d.log.Slog().Info("reload: the service's pfile is gone: no longer watched", "service", n)
			d.stopLocked(n)
			d.metrics.Forget(n)
			if d.store != nil {
				if err := d.store.Drop(n); err != nil {
					d.log.Slog().Error("cannot clear a removed service's kept state", "service", n, "error", err)
				}
			}
		}
	}
	d.log.Log(msg.Reloaded(name))
	return nil
}

// flatten splits a joined error (every pfile error) into its parts; nil
// is none.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	var es pfile.Errors
	if errors.As(err, &es) {
		out := make([]error, len(es))
		for i, e := range es {
			out[i] = e
		}
		return out
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// starvation judges each probe round by the run-queue waits of pcheck's
// threads and of the service's.
func starvation(pids func() []int) func() probe.Judge {
	m := &starve.Meter{PIDs: pids}
	return func() probe.Judge {
		from := m.Sample()
		return func(elapsed time.Duration) (string, bool) {
			return starve.Judge(from, m.Sample(), elapsed).Starved()
		}
	}
}
