// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"context"
	"slices"
	"testing"

	"github.com/pwatch/pwatch/pkg/msg"
)

// A signal sender's comm is the sender's choice: the restart script gets
// it quoted (internal/quote), never a raw newline or escape sequence.
func TestCauseEnvQuotesSenderComm(t *testing.T) {
	e := msg.KilledBy(9, false)
	e.SenderPID, e.SenderComm = 4321, "x\n<11>F\033[8m\xff"
	env := causeEnv(&e)
	if want := `PWATCH_SENDER_COMM=x\x0a<11>F\x1b[8m\xff`; !slices.Contains(env, want) {
		t.Errorf("causeEnv = %q, want %q in it", env, want)
	}
}

// Kept answers from the supervisor's own state: asked for a paused
// service (whose Status looks its processes up), it reads no /proc.
func TestKeptStatusNeverScans(t *testing.T) {
	h := newHarness(t, "ok", nil)
	h.running(t)
	h.run(t)
	h.waitState(t, Up)
	if err := h.svc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.procs.mu.Lock()
	before := h.procs.finds
	h.procs.mu.Unlock()
	for range 100 {
		if st := h.svc.Kept(); st.State != Paused {
			t.Fatalf("Kept: state %v, want Paused", st.State)
		}
	}
	h.procs.mu.Lock()
	after := h.procs.finds
	h.procs.mu.Unlock()
	if after != before {
		t.Errorf("100 Kept calls scanned /proc %d times", after-before)
	}
	if len(h.svc.Status().PIDs) != 1 {
		t.Error("Status of the paused service lost its running pid")
	}
}
