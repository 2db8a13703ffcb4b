// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
)

// DefaultInterval is limit_interval's default (pcheck's --limit-interval).
const DefaultInterval = 5 * time.Second

// Target is one service with limits, as the sampler sees it.
type Target struct {
	Name   string
	Limits Limits
	// Tree lists the processes of the service's watched trees now: its
	// top-level processes, the first first, then their descendants. nil
	// when the service is not Up: nothing is sampled, and its runs over
	// a limit are forgotten.
	Tree func() []proc.ID
	// Restart restarts the service gently for the breach (limit_action
	// restart), logging line when it takes the request.
	Restart func(ctx context.Context, b Breach, env []string, line msg.Message) error
}

// Reader reads processes' counters. Read is every sample's, for the
// processes of every sampled tree at once; PSS reads smaps_rollup, which
// costs a walk of the process's page tables: only for a tree whose RSS
// passes 90 % of memory_max.
type Reader interface {
	// Read reads every request's counters into got (cleared first); a
	// process gone, or whose pid now holds another, is left out.
	Read(reqs []Request, got map[proc.ID]Counters)
	PSS(id proc.ID) (uint64, error)
}

// Request is one process to read; FDs: its open descriptors are wanted.
type Request struct {
	ID  proc.ID
	FDs bool
}

// Counters are one process's counters at one read.
type Counters struct {
	// CPU is its CPU time so far, user and system.
	CPU     time.Duration
	Threads int
	// RSS is the resident memory in bytes, shared pages counted whole.
	RSS uint64
	FDs int
}

// Logger writes the over-limit lines (pkg/msg's Logger).
type Logger interface{ Log(m msg.Message) }

// Observer counts the limits' restarts (pkg/metrics).
type Observer interface{ LimitRestart(service, limit string) }

// Sampler samples every Target every Interval on one timer.
type Sampler struct {
	// Targets lists the services with limits now (a reload changes them).
	Targets  func() []Target
	Read     Reader
	Interval time.Duration
	Log      Logger
	Slog     *slog.Logger
	// Observer is told of each limit restart; nil: no one is.
	Observer Observer
	// Now is the monotonic clock (nil: time since the sampler was made).
	Now func() time.Duration

	mu     sync.Mutex
	served map[string]*served
	wake   chan struct{} // Wake's: a target may have come

	// The sample's requests and counters, kept for the next (Sample's
	// goroutine only).
	reqs []Request
	got  map[proc.ID]Counters
}

// served is what the sampler keeps of one service between samples.
type served struct {
	rule  *rule
	cpuAt map[proc.ID]time.Duration // each process's CPU time at the last sample
	at    time.Duration             // when the last sample was taken
	cpu   float64                   // CPUSeconds so far
	last  Usage
	seen  bool // sampled in the current period
}

// Run samples until ctx ends. While no service has limits it sleeps
// until Wake.
func (s *Sampler) Run(ctx context.Context) {
	defer func() {
		if c, ok := s.Read.(interface{ Close() }); ok {
			c.Close()
		}
	}()
	t := time.NewTimer(s.interval())
	defer t.Stop()
	for {
		idle := len(s.Targets()) == 0
		if idle {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wakeChan():
			if idle {
				t.Reset(s.interval())
			}
		case <-t.C:
			s.Sample(ctx)
			t.Reset(s.interval())
		}
	}
}

// Wake tells a sleeping sampler that a service may have limits now (one
// was started or reloaded). It never blocks; nil does nothing.
func (s *Sampler) Wake() {
	if s == nil {
		return
	}
	select {
	case s.wakeChan() <- struct{}{}:
	default:
	}
}

func (s *Sampler) wakeChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	return s.wake
}

func (s *Sampler) interval() time.Duration {
	if s.Interval <= 0 {
		return DefaultInterval
	}
	return s.Interval
}

func (s *Sampler) now() time.Duration {
	if s.Now == nil {
		s.Now = sinceStart()
	}
	return s.Now()
}

func sinceStart() func() time.Duration {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }
}

// Sample takes one sample of every target and acts on the breaches. The
// processes of every tree are read at once (one pass of a BPFReader).
func (s *Sampler) Sample(ctx context.Context) {
	s.mu.Lock()
	if s.served == nil {
		s.served = map[string]*served{}
	}
	for _, v := range s.served {
		v.seen = false
	}
	s.mu.Unlock()
	targets := s.Targets()
	trees := make([][]proc.ID, len(targets))
	s.reqs = s.reqs[:0]
	for i, t := range targets {
		trees[i] = t.Tree()
		for _, id := range trees[i] {
			s.reqs = append(s.reqs, Request{ID: id, FDs: t.Limits.FDs > 0})
		}
	}
	if s.got == nil {
		s.got = map[proc.ID]Counters{}
	}
	s.Read.Read(s.reqs, s.got)
	for i, t := range targets {
		s.sampleOne(ctx, t, trees[i])
	}
	s.mu.Lock()
	for name, v := range s.served {
		if !v.seen {
			delete(s.served, name) // no longer watched, or its limits gone
		}
	}
	s.mu.Unlock()
	if e, ok := s.Read.(interface{ EndSample() }); ok {
		e.EndSample()
	}
}

func (s *Sampler) sampleOne(ctx context.Context, t Target, tree []proc.ID) {
	s.mu.Lock()
	v := s.served[t.Name]
	if v == nil {
		v = &served{rule: newRule()}
		s.served[t.Name] = v
	}
	v.seen = true
	s.mu.Unlock()
	if len(tree) == 0 {
		s.mu.Lock()
		v.rule.reset()
		v.cpuAt, v.last = nil, Usage{}
		s.mu.Unlock()
		return
	}
	now := s.now()
	u, cpuAt := s.measure(tree, t.Limits, v, now)
	s.mu.Lock()
	v.cpuAt, v.at, v.last = cpuAt, now, u
	breaches := v.rule.judge(t.Limits, tree[0].PID, u, now, s.interval()/4)
	s.mu.Unlock()
	for _, b := range breaches {
		s.act(ctx, t, tree[0].PID, b)
	}
}

// measure sums the counters read of every process of tree. The CPU is
// the time each process used since the last sample, over the time
// between: a process that exited in between takes its last period's CPU
// with it, and one first seen now counts from now. The memory is the
// tree's RSS, unless that passes nine tenths of memory_max: then its PSS
// (PSS is never more than RSS, so under the limit by RSS is under it by
// PSS; from 90 % up the figure is exact, for the limit and for an alert
// near it).
func (s *Sampler) measure(tree []proc.ID, l Limits, v *served, now time.Duration) (Usage, map[proc.ID]time.Duration) {
	u := Usage{At: time.Now(), HasFDs: l.FDs > 0}
	cpuAt := make(map[proc.ID]time.Duration, len(tree))
	var used time.Duration
	for _, id := range tree {
		c, ok := s.got[id]
		if !ok {
			continue // gone, or its pid reused: not the service's now
		}
		u.Processes++
		u.Threads += c.Threads
		u.MemoryBytes += c.RSS
		u.FDs += c.FDs
		cpuAt[id] = c.CPU
		if before, ok := v.cpuAt[id]; ok && c.CPU >= before {
			used += c.CPU - before
		}
	}
	if l.MemoryBytes > 0 && u.MemoryBytes > uint64(l.MemoryBytes)/10*9 {
		u.MemoryBytes, u.PSS = s.pss(cpuAt), true
	}
	if v.cpuAt != nil && now > v.at {
		u.CPUPercent, u.HasCPU = 100*used.Seconds()/(now-v.at).Seconds(), true
		v.cpu += used.Seconds()
	}
	u.CPUSeconds = v.cpu
	return u, cpuAt
}

// pss is the sum of the PSS of the processes read (those in read).
func (s *Sampler) pss(read map[proc.ID]time.Duration) uint64 {
	var sum uint64
	for id := range read {
		if p, err := s.Read.PSS(id); err == nil {
			sum += p
		}
	}
	return sum
}

func (s *Sampler) act(ctx context.Context, t Target, pid int, b Breach) {
	value, max := Format(b.Limit, b.Value), Format(b.Limit, b.Max)
	if t.Limits.LogOnly || t.Restart == nil {
		s.Log.Log(msg.OverLimitLogged(t.Name, pid, b.Limit, value, max, b.Held))
		return
	}
	env := []string{"PWATCH_LIMIT=" + b.Limit, "PWATCH_LIMIT_VALUE=" + strconv.FormatFloat(b.Value, 'f', 0, 64)}
	line := msg.OverLimit(t.Name, pid, b.Limit, value, max, b.Held)
	// A restart takes its time (SIGTERM, limit_grace, the script): the
	// other services' samples do not wait for it.
	go func() {
		if err := t.Restart(ctx, b, env, line); err != nil {
			s.Slog.Warn("a limit restart was not taken", "service", t.Name, "limit", b.Limit, "error", err)
			return
		}
		if s.Observer != nil {
			s.Observer.LimitRestart(t.Name, b.Limit)
		}
	}()
}

// Usage is the last sample of service; false when it has none (no
// limits, not Up, or not sampled yet).
func (s *Sampler) Usage(service string) (Usage, bool) {
	if s == nil {
		return Usage{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.served[service]
	if v == nil || v.last.Processes == 0 {
		return Usage{}, false
	}
	return v.last, true
}
