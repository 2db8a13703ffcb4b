// SPDX-License-Identifier: Apache-2.0

// Package testpriv decides what a test that needs root (or BPF) does on a
// host where it cannot run: skip with the reason, or, when
// PWATCH_REQUIRE_PRIVILEGED=1 (as in CI), fail, so that a missing capability
// never passes as a skip.
package testpriv

import (
	"os"
	"testing"
)

// Required reports whether privileged tests must run here.
func Required() bool { return os.Getenv("PWATCH_REQUIRE_PRIVILEGED") == "1" }

// Unavailable skips t with reason, or fails it when privileged tests are
// required.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("privileged test cannot run (PWATCH_REQUIRE_PRIVILEGED=1): %s", reason)
	}
	t.Skip(reason)
}

// Root skips (or fails, see Unavailable) t unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}
