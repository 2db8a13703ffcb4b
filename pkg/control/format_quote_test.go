// SPDX-License-Identifier: Apache-2.0

package control_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
)

// A raw control byte that reached a status cell (a text the daemon did not
// quote) is quoted: root's terminal never gets an escape sequence, and no
// newline or tab breaks the table. Quoted text passes as it is.
func TestFormatStatusQuotesRawText(t *testing.T) {
	t.Setenv("TZ", "UTC")
	at := time.Date(2025, 5, 24, 9, 35, 26, 0, time.UTC)
	var b bytes.Buffer
	err := control.FormatStatus(&b, []control.ServiceStatus{{
		Name: "web", State: "Up", PIDs: []int{1}, UptimeSeconds: 5,
		LastEvent: &control.Event{Time: at, Text: "sent by pid 7 (x\\x0a, uid 0)"},
		LastDeath: &control.Death{Time: at, Text: "sent by pid 7 (x\n<11>F\033[8m\t\xff, uid 0)"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "\n") != 2 || strings.ContainsAny(out, "\033\t\xff") {
		t.Fatalf("the table holds a raw control byte:\n%q", out)
	}
	for _, want := range []string{`(x\x0a, uid 0)`, `(x\x0a<11>F\x1b[8m\x09\xff, uid 0)`} {
		if !strings.Contains(out, want) {
			t.Errorf("table %q lacks %s", out, want)
		}
	}
}
