// SPDX-License-Identifier: Apache-2.0

package argrule

import (
	"regexp"
	"testing"
)

// The rules that are compared as strings are those whose regexp matches
// exactly that string, anchored as written; the rest stay regexps.
func TestPlainRulesAreCompared(t *testing.T) {
	for expr, want := range map[string]how{
		`^-k start$`:                   equals,
		`^1000000 7$`:                  equals,
		`catalina\.startup\.Bootstrap`: contains,
		`^-DFOREGROUND`:                prefix,
		`Bootstrap start$`:             suffix,
		`\Qa.b*c\E`:                    contains,
		`^-k (start|restart)$`:         byRegexp,
		`(?i)^-k start$`:               byRegexp,
		`(?m)^-k start$`:               byRegexp,
		`^a.c$`:                        byRegexp,
		`^$`:                           byRegexp,
		`^\x{FFFD}$`:                   byRegexp,
	} {
		if r := MustCompile(expr); r.how != want {
			t.Errorf("%q compares by %d, want %d", expr, r.how, want)
		}
	}
}

// A Rule matches what package regexp matches, whichever way it compares.
func FuzzRuleAgreesWithRegexp(f *testing.F) {
	for _, seed := range [][2]string{
		{`^-k start$`, "-k start"}, {`^-k start$`, "-k start "}, {`^-k start$`, " -k start"},
		{`Bootstrap start$`, "-Dx org.apache.catalina.startup.Bootstrap start"},
		{`^-D`, "-DFOREGROUND"}, {`^-D`, "x -D"}, {`a\.b`, "xa.by"}, {`a\.b`, "axb"},
		{`^\x{FFFD}$`, "\xff"}, {`(?i)^abc$`, "ABC"}, {`^1000000 7$`, "1000000 77"},
		{`^`, ""}, {`$`, "x"}, {`^a$`, "a\n"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, expr, line string) {
		re, err := regexp.Compile(expr)
		r, rerr := Compile(expr)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Compile(%q) err %v, regexp's %v", expr, rerr, err)
		}
		if err != nil {
			return
		}
		if got, want := r.Match(line), re.MatchString(line); got != want {
			t.Errorf("%q on %q: %v, regexp says %v (compared by %d)", expr, line, got, want, r.how)
		}
		if r.String() != expr {
			t.Errorf("String() = %q, want %q", r.String(), expr)
		}
	})
}

func TestNilRuleAdmitsAll(t *testing.T) {
	var r *Rule
	if !r.Match("anything") || r.String() != "" {
		t.Error("a nil rule must admit every line and print as empty")
	}
}

// What a rule holds: a plain one its strings, a regexp its program.
func BenchmarkCompile(b *testing.B) {
	for _, expr := range []string{`^1000000 4711$`, `^-k (start|restart)$`} {
		b.Run(expr, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				MustCompile(expr)
			}
		})
	}
}
