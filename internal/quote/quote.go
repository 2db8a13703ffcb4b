// SPDX-License-Identifier: Apache-2.0

// Package quote is pwatch's one rule for text that comes from outside
// pcheck (a signal sender's comm, a process's name or command line, names
// in kernel-log lines, a script's output) on its way into a syslog line, a
// stderr field, padmin's table or a script's environment.
//
// Such text is chosen by whoever runs a process on the host: a comm of
// "x\n<11>F\033[8m" would forge a record on a stream syslog socket and send
// escape sequences to root's terminal. The rule keeps printable text as it
// is (so "kill" stays kill and log watchers' patterns keep matching) and
// writes every other byte as \xNN, two lower-case hex digits:
//
//   - bytes below 0x20 and 0x7f (C0 controls, DEL);
//   - the bytes of a rune that is not printable (unicode.IsPrint, ASCII
//     space excepted): C1 controls, which some terminals obey even as
//     UTF-8, bidirectional overrides, line and paragraph separators;
//   - every byte of invalid UTF-8;
//   - the backslash itself, so that the result reads back to exactly the
//     bytes it came from (one escape form, nothing to guess).
//
// This is the kernel's own style for /dev/kmsg, minus its escaping of
// valid UTF-8. JSON output (padmin status --json) carries the raw value,
// which JSON escapes by its own rules.
package quote

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// String applies the rule to s.
func String(s string) string {
	if plain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if keep(r, size) {
			b.WriteString(s[i : i+size])
		} else {
			for _, c := range []byte(s[i : i+size]) {
				b.WriteString(`\x`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
		}
		i += size
	}
	return b.String()
}

// Printable says whether s holds nothing String would escape but
// backslashes: text that is safe in a line as it is, such as a line built
// from parts already quoted.
func Printable(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != '\\' && !keep(r, size) {
			return false
		}
		i += size
	}
	return true
}

// Line is the last guard where text leaves pcheck (a syslog record, a
// table cell): s itself when it is Printable, else String(s). Text whose
// outside parts were quoted passes unchanged; anything raw that slipped
// through is quoted whole rather than written out.
func Line(s string) string {
	if Printable(s) {
		return s
	}
	return String(s)
}

// plain is the fast path: printable ASCII without a backslash.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// keep says whether the rune r, size bytes long, is written as it is.
func keep(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size <= 1: // invalid UTF-8 (a real U+FFFD is 3 bytes)
		return false
	case r == '\\':
		return false
	case r < utf8.RuneSelf:
		return r >= 0x20 && r < 0x7f
	}
	return unicode.IsPrint(r)
}
