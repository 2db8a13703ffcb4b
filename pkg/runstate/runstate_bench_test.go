// SPDX-License-Identifier: Apache-2.0

package runstate

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BenchmarkStartRecords is the records a start of 1,000 services writes,
// all at once as their scripts start together: a script record each, its
// trees, the script record's end. The records of the round before are
// there, as they are for a pcheck restarted, or services restarted.
// cpu-us/service is the process's CPU time (user and system) per service:
// the kernel's share of a burst of changes in one directory is most of it.
func BenchmarkStartRecords(b *testing.B) {
	const services = 1000
	self := os.Getpid()
	trees := []Tree{{Master: proc.ID{PID: self, StartTime: 1}}}
	s, err := Open(b.TempDir(), "/proc")
	if err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	for b.Loop() {
		before := testproc.OwnCPUTime(b)
		var wg sync.WaitGroup
		for i := range services {
			wg.Go(func() {
				name := fmt.Sprintf("s%05d", i)
				if err := s.ScriptStarted(name, self); err != nil {
					b.Error(err)
				}
				if err := s.Watched(name, trees); err != nil {
					b.Error(err)
				}
				if err := s.ScriptEnded(name); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		cpu += testproc.OwnCPUTime(b) - before
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*services), "cpu-us/service")
}
