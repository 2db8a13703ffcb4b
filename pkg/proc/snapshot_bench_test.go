// SPDX-License-Identifier: Apache-2.0

package proc_test

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/argrule"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BenchmarkSnapshot reads all of /proc into one table, as a start, a
// reload and every look that events cannot answer do, on a host with a
// crowd of 5,000 idle processes: the cost per process is what a read of a
// 20,000-process host costs a twentieth-thousandth of.
func BenchmarkSnapshot(b *testing.B) {
	testproc.Crowd(b, 5000)
	table, err := proc.NewTable("/proc", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		s, err := table.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		n = s.Len()
	}
	b.ReportMetric(float64(n), "procs")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/proc")
}

// BenchmarkScanOneExecutable is a start's first looks when many services
// run one executable, told apart by their arguments: 1,000 matchers scan
// one snapshot of 5,000 processes of that executable (a crowd). Every
// process is a candidate of every matcher, so what a candidate costs a
// matcher (its args regexp alone: the process's argv is read and joined
// once per snapshot) is multiplied by five million.
func BenchmarkScanOneExecutable(b *testing.B) {
	testproc.Crowd(b, 5000)
	table, err := proc.NewTable("/proc", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	matchers := make([]proc.Matcher, 1000)
	for i := range matchers {
		matchers[i] = proc.Matcher{Exe: testproc.Binary(b), Args: argrule.MustCompile(fmt.Sprintf("^crowd %d$", 100000+i))}
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := table.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range matchers {
			if found, err := s.Scan(m); err != nil || len(found) != 0 {
				b.Fatalf("scan: %v, %v (want no match)", found, err)
			}
		}
	}
}
