// SPDX-License-Identifier: Apache-2.0

// Package testport hands tests loopback ports that stay free until their
// server binds them. A port from 127.0.0.1:0, closed and bound again later,
// is in the ephemeral range, where any client's connect on the host may
// take it as its source port meanwhile; these are below it. Each test
// package gives its own span, so that packages running side by side never
// hand out the same port.
package testport

import (
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
)

// Span hands out the ports in [lo, hi), passing over those in use.
type Span struct {
	lo, hi int32
	last   atomic.Int32
}

// NewSpan is the span [lo, hi); it starts at a point the process id picks,
// so that two runs of one package rarely begin on the same port.
func NewSpan(lo, hi int) *Span {
	s := &Span{lo: int32(lo), hi: int32(hi)}
	s.last.Store(s.lo + int32(os.Getpid())%((s.hi-s.lo)/4+1) - 1)
	return s
}

// Free is a port of the span nothing listens on now.
func (s *Span) Free(t testing.TB) int {
	t.Helper()
	for range s.hi - s.lo {
		p := s.last.Add(1)
		if p >= s.hi {
			s.last.CompareAndSwap(p, s.lo-1)
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(p)))
		if err == nil {
			l.Close()
			return int(p)
		}
	}
	t.Fatalf("no free loopback port in [%d, %d)", s.lo, s.hi)
	return 0
}
