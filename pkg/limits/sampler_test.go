// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
)

type fakeReader struct {
	mu sync.Mutex
	c  map[int]Counters
}

func (f *fakeReader) Read(id proc.ID, want Want) (Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.c[id.PID]
	if !ok {
		return Counters{}, errors.New("gone")
	}
	if !want.Memory {
		c.PSS = 0
	}
	if !want.FDs {
		c.FDs = 0
	}
	return c, nil
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
		Read: r, Log: log, Slog: slog.New(slog.DiscardHandler), Now: func() time.Duration { return *clock },
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
	r := &fakeReader{c: map[int]Counters{10: {CPUTicks: 100, Threads: 1}, 11: {CPUTicks: 50, Threads: 3, FDs: 7}}}
	var clock time.Duration
	s, _, restarts := sampler(Limits{CPUPercent: 50, For: 2 * sec}, r, &logged{}, &clock)
	s.Sample(context.Background())
	if u, ok := s.Usage("php"); !ok || u.HasCPU || u.Threads != 4 || u.Processes != 2 || u.HasFDs || u.HasMemory {
		t.Fatalf("first sample %+v %v: want no CPU yet, 4 threads, no fds or memory (no such limits)", u, ok)
	}
	// 1 s later the tree used 0.8 s of CPU: 80 %.
	for i := 1; i <= 3; i++ {
		r.mu.Lock()
		r.c[10] = Counters{CPUTicks: r.c[10].CPUTicks + 50, Threads: 1}
		r.c[11] = Counters{CPUTicks: r.c[11].CPUTicks + 30, Threads: 3}
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
	c, err := pr.Read(id, Want{Memory: true, FDs: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Threads < 1 || c.PSS < 1<<20 || c.FDs < 3 {
		t.Errorf("counters %+v: want threads, a PSS of a Go test binary, stdio", c)
	}
	if _, err := pr.Read(proc.ID{PID: id.PID, StartTime: id.StartTime + 1}, Want{}); !errors.Is(err, proc.ErrGone) {
		t.Errorf("a pid whose start time differs: err %v, want ErrGone", err)
	}
}
