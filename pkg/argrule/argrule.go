// SPDX-License-Identifier: Apache-2.0

// Package argrule is a service's args rule: an RE2 expression searched in
// a process's arguments, argv[1:] joined by one space.
//
// Most rules are one plain string, anchored or not (`^-k start$`,
// `catalina\.startup\.Bootstrap`). Those are kept as the string and
// compared, not as a compiled program: a compiled regexp holds about
// 2.4 KiB, 12 MB for 5,000 services, and a comparison is faster too.
// Any other expression is matched by package regexp.
package argrule

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// Rule is a compiled args rule. A nil *Rule admits every argument line.
type Rule struct {
	expr string
	how  how
	lit  string         // the plain string, for every how but byRegexp
	re   *regexp.Regexp // for byRegexp only
}

// how is the way a Rule compares.
type how uint8

const (
	byRegexp how = iota
	contains     // lit
	equals       // ^lit$
	prefix       // ^lit
	suffix       // lit$
)

// Compile compiles expr with RE2's syntax, as regexp.Compile does, and
// refuses what it refuses.
func Compile(expr string) (*Rule, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	if h, lit, ok := plain(expr); ok {
		return &Rule{expr: expr, how: h, lit: lit}, nil
	}
	return &Rule{expr: expr, how: byRegexp, re: re}, nil
}

// MustCompile is Compile for expressions known good (tests, tables).
func MustCompile(expr string) *Rule {
	r, err := Compile(expr)
	if err != nil {
		panic(fmt.Sprintf("argrule: %q: %v", expr, err))
	}
	return r
}

// plain tells whether expr is one literal string, optionally anchored at
// the start or end of the text, and how to compare it.
func plain(expr string) (how, string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return 0, "", false
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	begin := len(subs) > 0 && subs[0].Op == syntax.OpBeginText
	if begin {
		subs = subs[1:]
	}
	end := len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText
	if end {
		subs = subs[:len(subs)-1]
	}
	if len(subs) != 1 || subs[0].Op != syntax.OpLiteral || subs[0].Flags&syntax.FoldCase != 0 {
		return 0, "", false
	}
	lit := string(subs[0].Rune)
	// regexp reads an invalid UTF-8 byte as U+FFFD; a byte comparison
	// would not, so such a rule stays a regexp.
	if strings.ContainsRune(lit, utf8.RuneError) {
		return 0, "", false
	}
	switch {
	case begin && end:
		return equals, lit, true
	case begin:
		return prefix, lit, true
	case end:
		return suffix, lit, true
	}
	return contains, lit, true
}

// Match reports whether the argument line matches the rule.
func (r *Rule) Match(line string) bool {
	if r == nil {
		return true
	}
	switch r.how {
	case contains:
		return strings.Contains(line, r.lit)
	case equals:
		return line == r.lit
	case prefix:
		return strings.HasPrefix(line, r.lit)
	case suffix:
		return strings.HasSuffix(line, r.lit)
	}
	return r.re.MatchString(line)
}

// String is the expression as written; "" for a nil Rule.
func (r *Rule) String() string {
	if r == nil {
		return ""
	}
	return r.expr
}
