// SPDX-License-Identifier: Apache-2.0

package supervise

import "testing"

func TestStateNames(t *testing.T) {
	want := map[State]string{Up: "Up", Down: "Down", Restarting: "Restarting", Stalled: "Stalled", Paused: "Paused", RetryOver: "RetryOver", State(99): "State(99)"}
	for s, n := range want {
		if got := s.String(); got != n {
			t.Errorf("%d.String() = %q, want %q", int(s), got, n)
		}
	}
}

func TestTransitions(t *testing.T) {
	allowed := [][2]State{{Up, Down}, {Down, Restarting}, {Restarting, Up}, {Restarting, Down}, {Down, RetryOver}, {RetryOver, Up}, {Up, Paused}, {Paused, Up}, {Up, Stalled}, {Stalled, Down}}
	for _, m := range allowed {
		if !canMove(m[0], m[1]) {
			t.Errorf("%v -> %v refused, want allowed", m[0], m[1])
		}
	}
	refused := [][2]State{{Up, Restarting}, {Up, RetryOver}, {Paused, Restarting}, {RetryOver, Restarting}, {Up, Up}}
	for _, m := range refused {
		if canMove(m[0], m[1]) {
			t.Errorf("%v -> %v allowed, want refused", m[0], m[1])
		}
	}
}
