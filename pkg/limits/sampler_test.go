// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
)

type fakeReader struct {
	mu       sync.Mutex
	c        map[int]Counters
	pss      map[int]uint64
	pssReads int
}

func (f *fakeReader) Read(reqs []Request, got map[proc.ID]Counters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(got)
	for _, q := range reqs {
		c, ok := f.c[q.ID.PID]
		if !ok {
			continue
		}
		if !q.FDs {
			c.FDs = 0
		}
		got[q.ID] = c
	}
}

func (f *fakeReader) PSS(id proc.ID) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pssReads++
	return f.pss[id.PID], nil
}

type logged struct {
	mu    sync.Mutex
	lines []string
}

func (l *logged) Log(m msg.Message) { l.mu.Lock(); l.lines = append(l.lines, m.Text); l.mu.Unlock() }

type restartCall struct {
	b    Breach
	env  []string
	line string
}

// sampler returns a sampler of one target over the fake's pids, on a
// clock the test moves, and the channel its restarts arrive on.
func sampler(l Limits, r *fakeReader, log *logged, clock *time.Duration) (*Sampler, *[]proc.ID, chan restartCall) {
	tree := &[]proc.ID{{PID: 10}, {PID: 11}}
	restarts := make(chan restartCall, 10)
	s := &Sampler{
		Read: r, Log: log, Slog: slog.New(slog.DiscardHandler), Now: func() time.Duration { return *clock }, Interval: sec,
		Targets: func() []Target {
			return []Target{{Name: "php", Limits: l, Tree: func() []proc.ID { return *tree },
				Restart: func(_ context.Context, b Breach, env []string, line msg.Message) error {
					restarts <- restartCall{b, env, line.Text}
					return nil
				}}}
		},
	}
	return s, tree, restarts
}

func TestSamplerCPUAndRestart(t *testing.T) {
	r := &fakeReader{c: map[int]Counters{10: {CPU: sec, Threads: 1}, 11: {CPU: sec / 2, Threads: 3, FDs: 7}}}
	var clock time.Duration
	s, _, restarts := sampler(Limits{CPUPercent: 50, For: 2 * sec}, r, &logged{}, &clock)
	s.Sample(context.Background())
	if u, ok := s.Usage("php"); !ok || u.HasCPU || u.Threads != 4 || u.Processes != 2 || u.HasFDs {
		t.Fatalf("first sample %+v %v: want no CPU yet, 4 threads, no fds (no fds_max)", u, ok)
	}
	// 1 s later the tree used 0.8 s of CPU: 80 %.
	for i := 1; i <= 3; i++ {
		r.mu.Lock()
		r.c[10] = Counters{CPU: r.c[10].CPU + 500*time.Millisecond, Threads: 1}
		r.c[11] = Counters{CPU: r.c[11].CPU + 300*time.Millisecond, Threads: 3}
		r.mu.Unlock()
		clock += sec
		s.Sample(context.Background())
	}
	u, _ := s.Usage("php")
	if !u.HasCPU || u.CPUPercent < 79.9 || u.CPUPercent > 80.1 || u.CPUSeconds < 2.39 || u.CPUSeconds > 2.41 {
		t.Errorf("usage %+v: want 80%% and 2.4 CPU seconds", u)
	}
	select {
	case c := <-restarts:
		if c.b.Limit != CPUMax || c.line != "Process ['php',pid=10] over cpu_max: 80% > 50% for 2 s, restarting" ||
			strings.Join(c.env, " ") != "PWATCH_LIMIT=cpu_max PWATCH_LIMIT_VALUE=80" {
			t.Errorf("restart %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no restart")
	}
}

func TestSamplerLogOnlyAndNotUp(t *testing.T) {
	r := &fakeReader{c: map[int]Counters{10: {FDs: 200}, 11: {FDs: 100}}}
	var clock time.Duration
	log := &logged{}
	s, tree, restarts := sampler(Limits{FDs: 256, For: 0, LogOnly: true}, r, log, &clock)
	s.Sample(context.Background())
	clock += sec
	s.Sample(context.Background())
	if len(log.lines) != 1 || log.lines[0] != "Process ['php',pid=10] over fds_max: 300 > 256 for 0 s" {
		t.Errorf("lines %q: want one over-limit line without restarting", log.lines)
	}
	if len(restarts) != 0 {
		t.Errorf("limit_action log restarted")
	}
	*tree = nil // not Up
	s.Sample(context.Background())
	if u, ok := s.Usage("php"); ok {
		t.Errorf("a service not Up has a usage: %+v", u)
	}
}

// The tree's RSS decides while under memory_max; past it, the PSS
// (smaps_rollup, read only then) does.
func TestSamplerPSSOnlyPastTheLimitByRSS(t *testing.T) {
	r := &fakeReader{c: map[int]Counters{10: {RSS: 40 << 20}, 11: {RSS: 40 << 20}}, pss: map[int]uint64{10: 30 << 20, 11: 10 << 20}}
	var clock time.Duration
	log := &logged{}
	s, _, _ := sampler(Limits{MemoryBytes: 100 << 20, For: 0, LogOnly: true}, r, log, &clock)
	s.Sample(context.Background())
	if u, _ := s.Usage("php"); u.MemoryBytes != 80<<20 || u.PSS || r.pssReads != 0 {
		t.Errorf("under the limit by RSS: %+v, %d PSS reads; want the RSS, no PSS read", u, r.pssReads)
	}
	r.c[11] = Counters{RSS: 90 << 20} // RSS 130 MiB, PSS 40 MiB: shared pages
	s.Sample(context.Background())
	if u, _ := s.Usage("php"); u.MemoryBytes != 40<<20 || !u.PSS || r.pssReads != 2 || len(log.lines) != 0 {
		t.Errorf("past the limit by RSS only: %+v, %d PSS reads, lines %q; want the PSS, under the limit", u, r.pssReads, log.lines)
	}
	r.pss[11] = 80 << 20
	s.Sample(context.Background())
	if len(log.lines) != 1 || log.lines[0] != "Process ['php',pid=10] over memory_max: 110 MiB > 100 MiB for 0 s" {
		t.Errorf("past the limit by PSS: lines %q", log.lines)
	}
}

// The real reader on this test's own process.
func TestProcReaderSelf(t *testing.T) {
	pr, err := NewProcReader("")
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := proc.Identify("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	c, err := pr.read(id, true)
	if err != nil {
		t.Fatal(err)
	}
	pss, err := pr.PSS(id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Threads < 1 || c.RSS < 1<<20 || pss < 1<<20 || pss > c.RSS+1<<20 || c.FDs < 3 || c.CPU == 0 {
		t.Errorf("counters %+v, PSS %d: want threads, the RSS and PSS of a Go test binary, stdio, some CPU", c, pss)
	}
	if _, err := pr.read(proc.ID{PID: id.PID, StartTime: id.StartTime + 1}, false); !errors.Is(err, proc.ErrGone) {
		t.Errorf("a pid whose start time differs: err %v, want ErrGone", err)
	}
}

// A kept stat file serves the next samples, and its process's end is
// seen through it (never a later process with the pid); EndSample closes
// the files of processes no longer read.
func TestProcReaderKeepsStatOpen(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	id, _, err := proc.Identify("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := NewProcReader("")
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	for range 2 {
		if _, err := pr.read(id, false); err != nil {
			t.Fatal(err)
		}
		pr.EndSample()
	}
	if len(pr.kept) != 1 {
		t.Fatalf("%d stat files kept, want 1", len(pr.kept))
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := pr.read(id, false); !errors.Is(err, proc.ErrGone) {
		t.Errorf("after its end: err %v, want ErrGone", err)
	}
	pr.EndSample()
	pr.EndSample()
	if len(pr.kept) != 0 {
		t.Errorf("%d stat files still open", len(pr.kept))
	}
}

// With no service with limits the sampler sleeps (asks for its targets
// once, then waits); Wake brings it back to sampling.
func TestSamplerSleepsWithoutTargets(t *testing.T) {
	var mu sync.Mutex
	asked, have := 0, false
	sampled := make(chan struct{}, 100)
	r := &fakeReader{c: map[int]Counters{10: {}}}
	s := &Sampler{Read: r, Log: &logged{}, Slog: slog.New(slog.DiscardHandler), Interval: 10 * time.Millisecond,
		Targets: func() []Target {
			mu.Lock()
			defer mu.Unlock()
			asked++
			if !have {
				return nil
			}
			return []Target{{Name: "php", Limits: Limits{Threads: 100}, Tree: func() []proc.ID {
				sampled <- struct{}{}
				return []proc.ID{{PID: 10}}
			}}}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // ten periods: an awake sampler would ask ten times
	mu.Lock()
	if asked != 1 {
		t.Errorf("an idle sampler asked for its targets %d times in ten periods, want once", asked)
	}
	have = true
	mu.Unlock()
	s.Wake()
	select {
	case <-sampled:
	case <-time.After(10 * time.Second):
		t.Fatal("no sample after Wake")
	}
}
