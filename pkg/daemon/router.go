package daemon

import (
	"context"
	"slices"
	"sync"

	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// router shares the host's one Watcher among the services: it remembers
// which services watch which process (two pfiles may match the same one),
// and hands each event to every owner.
type router struct {
	w exitwatch.Watcher

	mu     sync.Mutex
	owners map[proc.ID][]*supervise.Service
	execs  map[string][]*supervise.Service // executable -> services running it
}

func newRouter(w exitwatch.Watcher) *router {
	return &router{w: w, owners: map[proc.ID][]*supervise.Service{}, execs: map[string][]*supervise.Service{}}
}

// serviceWatch is the Watcher one service is lent: what it watches is
// routed back to it.
type serviceWatch struct {
	r *router
	s *supervise.Service
}

func (sw *serviceWatch) Watch(id proc.ID) error {
	sw.r.mu.Lock()
	if !slices.Contains(sw.r.owners[id], sw.s) {
		sw.r.owners[id] = append(sw.r.owners[id], sw.s)
	}
	sw.r.mu.Unlock()
	return sw.r.w.Watch(id)
}

func (sw *serviceWatch) Unwatch(id proc.ID) error {
	if !sw.r.drop(id, sw.s) {
		return nil // another service still watches it
	}
	return sw.r.w.Unwatch(id)
}

// drop removes s from id's owners and says whether none is left.
func (r *router) drop(id proc.ID, s *supervise.Service) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	owners := slices.DeleteFunc(r.owners[id], func(o *supervise.Service) bool { return o == s })
	if len(owners) > 0 {
		r.owners[id] = owners
		return false
	}
	delete(r.owners, id)
	return true
}

// forget drops every watch of s (a supervisor that was stopped): its
// processes' exits no longer concern anyone.
func (r *router) forget(s *supervise.Service) {
	r.mu.Lock()
	var ids []proc.ID
	for id, owners := range r.owners {
		if slices.Contains(owners, s) {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	for _, id := range ids {
		if r.drop(id, s) {
			_ = r.w.Unwatch(id)
		}
	}
}

// watchExec asks for the exec events of s's executable.
func (r *router) watchExec(exe string, s *supervise.Service) error {
	r.mu.Lock()
	first := len(r.execs[exe]) == 0
	r.execs[exe] = append(r.execs[exe], s)
	r.mu.Unlock()
	if first {
		return r.w.WatchExec(exe)
	}
	return nil
}

// unwatchExec undoes watchExec.
func (r *router) unwatchExec(exe string, s *supervise.Service) error {
	r.mu.Lock()
	list := r.execs[exe]
	for i, o := range list {
		if o == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	r.execs[exe] = list
	last := len(list) == 0
	if last {
		delete(r.execs, exe)
	}
	r.mu.Unlock()
	if last {
		return r.w.UnwatchExec(exe)
	}
	return nil
}

// run delivers events until ctx ends or the watcher closes.
func (r *router) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-r.w.Events():
			if !ok {
				return
			}
			r.deliver(ev)
		}
	}
}

func (r *router) deliver(ev exitwatch.Event) {
	r.mu.Lock()
	switch ev.Kind {
	case exitwatch.Exit:
		owners := r.owners[ev.ID]
		delete(r.owners, ev.ID)
		r.mu.Unlock()
		for _, s := range owners {
			s.Exited(ev)
		}
	case exitwatch.Exec:
		services := append([]*supervise.Service(nil), r.execs[ev.Exe]...)
		r.mu.Unlock()
		for _, s := range services {
			s.Appeared()
		}
	default:
		r.mu.Unlock()
	}
}
