package supervise

import (
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
