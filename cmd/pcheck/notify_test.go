// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
)

// Bad --notify-* values are usage errors, before anything starts.
func TestNotifyFlagsAreUsageErrors(t *testing.T) {
	for args, want := range map[string]string{
		"run --notify-events down,dwon x": "pcheck: --notify-events \"down,dwon\": unknown event \"dwon\"; known events: adopted, ",
		"run --notify-burst 0 x":          "pcheck: --notify-burst 0: want at least 1\n",
		"run --notify-per 10ms x":         "pcheck: --notify-per 10ms: want at least 1s\n",
	} {
		out, errOut, status := pcheck(t, strings.Fields(args)...)
		if status != 2 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("pcheck %s: status %d, stdout %q, stderr %q; want 2, nothing, %q", args, status, out, errOut, want)
		}
	}
}
