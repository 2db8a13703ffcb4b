// SPDX-License-Identifier: Apache-2.0

package proc_test

import (
	"log/slog"
	"testing"

	"github.com/pwatch/pwatch/internal/testproc"
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
