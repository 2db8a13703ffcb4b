// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkScrape measures one /metrics scrape of a host with 100
// services, each with a socket and a probe history: what a scrape costs
// pcheck.
func BenchmarkScrape(b *testing.B) {
	src := &fakeSource{backend: "ebpf", bpf: &BPFStats{Received: 1}, reboots: new(int)}
	m := New(src, Options{RestartReasons: reasons})
	for i := range 100 {
		name := fmt.Sprintf("svc%03d", i)
		s := state(name, "Up")
		s.Sockets = []Socket{{Port: 8000 + i, Queue: 1, Backlog: 511}}
		src.set(s)
		m.Restart(name, "down")
		m.ObserveProbe(name, "_bi_webserv", time.Millisecond, true)
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkObserveProbe is the cost a probe pays for its histogram.
func BenchmarkObserveProbe(b *testing.B) {
	m := New(&fakeSource{}, Options{})
	for b.Loop() {
		m.ObserveProbe("web", "_bi_webserv", time.Millisecond, true)
	}
}
