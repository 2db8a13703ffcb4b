// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BenchmarkLimitSampler is one sample period of pcheck's sampler with 500
// services with every limit set, 20 processes each: 10,000 real processes.
// It reports the CPU one period costs and what that is of one core at the
// default 5 s period (the bar: under 1 %), for each reader: bpf (the task
// iterator pcheck uses where it loads) and proc (/proc/PID/stat and the
// size of /proc/PID/fd, its fallback). under: every tree is under its
// memory_max by RSS (the usual case); nofds: the same without fds_max;
// over: every tree's RSS passes memory_max, so its PSS is read from
// smaps_rollup too (the worst case, not the usual one). The proc reader
// keeps every stat file open, as under systemd's RLIMIT_NOFILE (a quarter
// of 524288).
func BenchmarkLimitSampler(b *testing.B) {
	testpriv.Root(b) // smaps_rollup and fd of other processes
	const services, each = 500, 20
	ids := crowdIDs(b, services*each)
	for _, tc := range []struct {
		name   string
		memory int64
		fds    int
	}{{"under", 1 << 40, 1 << 20}, {"nofds", 1 << 40, 0}, {"over", 1, 1 << 20}} {
		for _, kind := range []string{"bpf", "proc"} {
			b.Run(kind+"/"+tc.name, func(b *testing.B) {
				targets := make([]Target, services)
				for i := range targets {
					tree := ids[i*each : (i+1)*each]
					targets[i] = Target{
						Name:   "svc" + strconv.Itoa(i),
						Limits: Limits{MemoryBytes: tc.memory, CPUPercent: 100000, FDs: tc.fds, Threads: 1 << 20, For: time.Hour, LogOnly: true},
						Tree:   func() []proc.ID { return tree },
					}
				}
				s := &Sampler{Targets: func() []Target { return targets }, Read: benchReader(b, kind, services*each), Log: discard{}, Slog: slog.New(slog.DiscardHandler)}
				ctx := context.Background()
				s.Sample(ctx) // the first sample has no CPU to compare with
				before := testproc.OwnCPUTime(b)
				for b.Loop() {
					s.Sample(ctx)
				}
				perSample := (testproc.OwnCPUTime(b) - before) / time.Duration(b.N)
				if u, ok := s.Usage("svc0"); !ok || u.Processes != each || !u.HasCPU || u.PSS != (tc.memory == 1) || u.HasFDs != (tc.fds > 0) {
					b.Fatalf("svc0 sampled %+v, want its %d processes", u, each)
				}
				b.ReportMetric(float64(perSample.Microseconds())/1000, "cpu-ms/sample")
				b.ReportMetric(100*perSample.Seconds()/DefaultInterval.Seconds(), "%core@5s")
			})
		}
	}
}

// benchReader is the reader kind ("bpf" or "proc"), closed with b.
func benchReader(b *testing.B, kind string, processes int) Reader {
	if kind == "bpf" {
		r, err := NewBPFReader("")
		if err != nil {
			testpriv.Unavailable(b, "the sampler's BPF iterator: "+err.Error())
		}
		b.Cleanup(r.Close)
		return r
	}
	r, err := NewProcReader("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	r.keep = processes
	return r
}

type discard struct{}

func (discard) Log(msg.Message) {}

// crowdIDs starts n idle processes and returns their identities. They
// come in crowds of a thousand: one helper forking ten thousand on a
// loaded host outlasts testproc's deadline.
func crowdIDs(b *testing.B, n int) []proc.ID {
	b.Helper()
	for left := n; left > 0; left -= 1000 {
		testproc.Crowd(b, min(left, 1000))
	}
	self := strconv.Itoa(os.Getpid())
	byParent := map[string][]proc.ID{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		start, _ := strconv.ParseUint(f[19], 10, 64)
		pid, _ := strconv.Atoi(e.Name())
		byParent[f[1]] = append(byParent[f[1]], proc.ID{PID: pid, StartTime: start})
	}
	var ids []proc.ID
	for _, helper := range byParent[self] {
		ids = append(ids, byParent[strconv.Itoa(helper.PID)]...)
	}
	if len(ids) != n {
		b.Fatalf("found %d processes of the crowds, want %d", len(ids), n)
	}
	return ids
}
