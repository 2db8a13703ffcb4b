// SPDX-License-Identifier: Apache-2.0

package testport

import (
	"net"
	"strconv"
	"testing"
)

// Ports come from the span, in order, passing over one something holds,
// and wrap around at its end.
func TestFreePassesOverHeldPortsAndWraps(t *testing.T) {
	first := NewSpan(15000, 15003).Free(t)
	if first < 15000 || first >= 15003 {
		t.Fatalf("port %d, want one of [15000, 15003)", first)
	}
	// A span of three whose middle port this test holds.
	var held net.Listener
	lo := 15000
	for ; held == nil && lo < 15900; lo += 3 {
		held, _ = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lo+1))
	}
	if held == nil {
		t.Fatal("no port of 15001-15900 to hold")
	}
	defer held.Close()
	lo -= 3
	s := NewSpan(lo, lo+3)
	s.last.Store(int32(lo - 1))
	if a, b, c := s.Free(t), s.Free(t), s.Free(t); a != lo || b != lo+2 || c != lo {
		t.Errorf("ports %d, %d, %d; want %d, %d (%d held), then %d again", a, b, c, lo, lo+2, lo+1, lo)
	}
}
