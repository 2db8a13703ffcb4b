// SPDX-License-Identifier: Apache-2.0

package pfile

import "testing"

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true}, {"64M", 64 << 20, true}, {"64m", 64 << 20, true}, {"2G", 2 << 30, true},
		{"1K", 1024, true}, {"1048576G", 1 << 50, true}, {"1048577G", 0, false},
		{"0", 0, false}, {"M", 0, false}, {"1.5G", 0, false}, {"-1", 0, false}, {"1T", 0, false}, {"99999999999999999", 0, false},
	} {
		if got, ok := parseSize(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// limit_grace with limit_action log loads, with a warning: switching the
// action to log to learn the figures must not need the grace removed.
func TestLimitGraceWithLogWarns(t *testing.T) {
	svc, warns := mustParse(t, pf(lProc, lRS, "cpu_max 90", "limit_action log", "limit_grace 5"))
	if svc.LimitAction != LimitLog || len(warns) != 1 || warns[0].String() != "t.pfile:5:1: warning: limit_grace has no effect with limit_action log (nothing is killed)" {
		t.Errorf("action %v, warnings %v", svc.LimitAction, warns)
	}
}
