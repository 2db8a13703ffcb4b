// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure every backend; each uses what it needs.
type Options struct {
	// ProcRoot is the procfs mount, /proc unless a test says otherwise.
	ProcRoot string
	// PollInterval is the proc backend's period.
	PollInterval time.Duration
	Logger       *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// ErrNotSupported says a backend cannot work on this host (the kernel lacks
// what it needs). Any other probe error is a real error and is logged.
var ErrNotSupported = errors.New("not supported on this host")

// backend is one implementation, registered by its own file.
type backend struct {
	name string
	rank int // lower is preferred by auto
	// probe answers nil when the backend can work here, an error wrapping
	// ErrNotSupported when the kernel says no, any other error otherwise.
	probe func(Options) error
	open  func(Options, Sink) (Watcher, error)
}

var registry = map[string]backend{}

func register(b backend) { registry[b.name] = b }

// Backends lists the registered backends, best first.
func Backends() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return registry[names[i]].rank < registry[names[j]].rank })
	return names
}

// Open starts the named backend, or with "auto" the best one that works
// here, logging which and why the better ones were passed over. Its
// events go to sink.
func Open(name string, opt Options, sink Sink) (Watcher, error) {
	if sink == nil {
		return nil, errors.New("exitwatch: Open needs a Sink")
	}
	opt = opt.withDefaults()
	if name != "auto" {
		b, ok := registry[name]
		if !ok {
			return nil, fmt.Errorf("unknown watcher %q (have auto, %v)", name, Backends())
		}
		return b.open(opt, sink)
	}
	var reasons []error
	for _, n := range Backends() {
		b := registry[n]
		err := b.probe(opt)
		if err == nil {
			w, openErr := b.open(opt, sink)
			if openErr == nil {
				attrs := []any{"watcher", n}
				if len(reasons) > 0 { // the best one works: nothing to explain
					attrs = append(attrs, "passed_over", joinReasons(reasons))
				}
				opt.Logger.Info("death-detection backend chosen", attrs...)
				return w, nil
			}
			err = openErr
		}
		if errors.Is(err, ErrNotSupported) {
			opt.Logger.Info("backend not supported here", "watcher", n, "reason", err)
		} else {
			opt.Logger.Warn("backend failed its probe", "watcher", n, "err", err)
		}
		reasons = append(reasons, fmt.Errorf("%s: %w", n, err))
	}
	return nil, fmt.Errorf("no death-detection backend works here: %w", errors.Join(reasons...))
}

// heartbeat records when a backend's reader last woke (CLOCK_MONOTONIC),
// for Watcher.LastWake. Backends embed it.
type heartbeat struct{ at atomic.Int64 }

func (h *heartbeat) beat() { h.at.Store(int64(monotonicNow())) }

// LastWake is when the reader last woke; 0 before it first did.
func (h *heartbeat) LastWake() time.Duration { return time.Duration(h.at.Load()) }

// ReaderWakeEvery is how often every backend's reader wakes, events or
// not (LastWake, for a watchdog). It is the one timer of an idle pcheck, so
// it is seconds apart: each wake costs a few thread switches in Go's
// runtime, and the runtime's own monitor sleeps until the next timer.
const ReaderWakeEvery = 5 * time.Second

// joinReasons puts the reasons better backends were passed over on one
// log line: "ebpf: ...; netlink: ...".
func joinReasons(reasons []error) string {
	s := make([]string, len(reasons))
	for i, r := range reasons {
		s[i] = r.Error()
	}
	return strings.Join(s, "; ")
}

// every calls f every d until stop closes: the pollers' loop.
func every(d time.Duration, stop <-chan struct{}, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			f()
		}
	}
}
