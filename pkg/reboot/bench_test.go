// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"testing"
	"time"
)

// BenchmarkAllow measures one allowed reboot: read, decide, and the durable
// write (two fsyncs) that must finish before the reboot command runs.
func BenchmarkAllow(b *testing.B) {
	clock := &fakeClock{t: t0}
	g, err := NewGuard(b.TempDir(), 3, time.Hour, clock.Now)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		// Each reboot ages the previous ones out, so every call is allowed.
		clock.Set(t0.Add(time.Duration(i) * 2 * time.Hour))
		if ok, err := g.Allow("svc"); !ok || err != nil {
			b.Fatalf("Allow = %v, %v", ok, err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/allow")
}
