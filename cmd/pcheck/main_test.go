// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func pcheck(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"pcheck"}, args...), &out, &errb)
	status = exitStatus(err, &errb)
	return out.String(), errb.String(), status
}

// Bad usage exits 2 with one plain line, before anything starts.
func TestUsageErrorsExitTwo(t *testing.T) {
	for args, want := range map[string]string{
		"run":                          "pcheck: run: name at least one pfile or directory\n",
		"run --bogus x":                "pcheck: unknown flag --bogus (see 'pcheck run --help')\n",
		"run --watcher bogus x":        "pcheck: --watcher \"bogus\": want auto, ",
		"run --poll-interval abc x":    "pcheck: invalid value \"abc\" for --poll-interval: ",
		"run --log-format xml x":       "pcheck: --log-format \"xml\": want text or json\n",
		"run --limit-interval 10ms x":  "pcheck: --limit-interval 10ms: want at least 100ms\n",
		"run --syslog-facility nope x": "pcheck: --syslog-facility: unknown syslog facility \"nope\"",
		"nosuch":                       "pcheck: unknown command \"nosuch\" (see 'pcheck --help')\n",
	} {
		out, errOut, status := pcheck(t, strings.Fields(args)...)
		if status != 2 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("pcheck %s: status %d, stdout %q, stderr %q; want 2, nothing, %q", args, status, out, errOut, want)
		}
	}
}

func TestHelpAndVersionOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {}} {
		out, errOut, status := pcheck(t, args...)
		if status != 0 || errOut != "" || !strings.Contains(out, "USAGE:") {
			t.Errorf("pcheck %v: status %d, stdout %q, stderr %q", args, status, out, errOut)
		}
	}
	out, errOut, status := pcheck(t, "--version")
	if status != 0 || errOut != "" || !strings.HasPrefix(out, "pcheck version ") {
		t.Errorf("--version: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}
