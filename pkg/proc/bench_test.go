// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"os"
	"testing"
)

// BenchmarkScan scans the live /proc for a running master with workers,
// as the daemon does at start and while waiting for a restart.
func BenchmarkScan(b *testing.B) {
	table := liveTable(b)
	h := startHelper(b, "master")
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	m := Matcher{Exe: exe, Args: helperArgs}
	snap, err := table.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ms, err := table.Scan(m)
		if err != nil || len(ms) != 1 || ms[0].ID != h.ids[0] {
			b.Fatalf("Scan = %s, %v", render(ms), err)
		}
	}
	after, err := table.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	// The host's process count can change during the run: take the mean.
	procs := float64(snap.Len()+after.Len()) / 2
	b.ReportMetric(procs, "procs")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/procs, "ns/proc")
}

// BenchmarkIdentity reads one process's identity, as Kill does before each
// kill(2) without pidfds and Alive does.
func BenchmarkIdentity(b *testing.B) {
	table := liveTable(b)
	pid := 1
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := table.Identity(pid); err != nil {
			b.Fatal(err)
		}
	}
}
