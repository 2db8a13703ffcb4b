// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A logical line is one statement after comments are cut off and
// continuations are joined. segs maps offsets in text back to the physical
// lines and columns they came from.
type logicalLine struct {
	text string
	segs []segment
	buf  []byte // text while lines are being joined
}

type segment struct {
	off  int // offset in the logical text where this segment starts
	line int // physical line, 1-based
	col  int // 1-based byte column of the segment's first byte
}

// pos maps an offset in the logical text to a physical line and column.
func (l *logicalLine) pos(off int) (line, col int) {
	for i := len(l.segs) - 1; i >= 0; i-- {
		if s := l.segs[i]; s.off <= off {
			return s.line, s.col + off - s.off
		}
	}
	return l.segs[0].line, l.segs[0].col
}

func (l *logicalLine) line() int { return l.segs[0].line }

func (l *logicalLine) add(text string, line, col int) {
	l.segs = append(l.segs, segment{off: len(l.buf), line: line, col: col})
	l.buf = append(l.buf, text...)
}

type physLine struct {
	num  int
	text string
	bad  bool // invalid encoding: reported, then treated as blank
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimSpace(s string) string { return strings.Trim(s, " \t") }

// splitLines cuts src into physical lines, accepting \n and \r\n ends and a
// leading UTF-8 byte order mark, and reports lines that are not UTF-8 or
// hold control characters.
func (p *parser) splitLines(src []byte) []physLine {
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	raw := strings.Split(string(src), "\n")
	if len(raw) > 0 && raw[len(raw)-1] == "" {
		raw = raw[:len(raw)-1]
	}
	lines := make([]physLine, len(raw))
	for i, t := range raw {
		t = strings.TrimSuffix(t, "\r")
		lines[i] = physLine{num: i + 1, text: t}
		for j := 0; j < len(t); {
			r, size := utf8.DecodeRuneInString(t[j:])
			if r == utf8.RuneError && size <= 1 {
				p.errorf(i+1, j+1, "invalid UTF-8: a pfile must be UTF-8 text")
				lines[i].bad = true
				break
			}
			if r < 0x20 && r != '\t' || r == 0x7f {
				p.errorf(i+1, j+1, "control character %U: expected text", r)
				lines[i].bad = true
				break
			}
			j += size
		}
	}
	return lines
}

// cutComment removes a trailing comment: a # outside double quotes that
// starts the text or follows white space. inQuote says whether the text
// starts inside a quoted string (continued from the line before); the
// result says whether it ends inside one.
func cutComment(text string, inQuote bool) (string, bool) {
	esc := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if inQuote {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inQuote = false
			}
			continue
		}
		if c == '"' {
			inQuote = true
			continue
		}
		if c == '#' && (i == 0 || isSpace(text[i-1])) {
			return text[:i], false
		}
	}
	return text, inQuote
}

// endsWithContinuation reports whether s ends in a lone backslash (an odd
// number of them).
func endsWithContinuation(s []byte) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// firstWord returns the text up to the first white space, { or }.
func firstWord(s string) string {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) || s[i] == '{' || s[i] == '}' {
			return s[:i]
		}
	}
	return s
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isPSEntry reports whether word names a PS_ entry (any PS_ word: unknown
// ones are reported by the parser).
func isPSEntry(word string) bool {
	return len(word) >= 3 && strings.EqualFold(word[:3], "PS_")
}

func isBlockStart(word string) bool {
	return len(word) >= 4 && strings.EqualFold(word[:4], "_bi_")
}

// isStatement reports whether a trimmed, non-comment line is a statement:
// a block start or end, a PS_ entry or a key. A word that is close to a
// key (a typo) counts as a key, so that the parser reports it instead of a
// comment swallowing it.
func isStatement(trimmed string) bool {
	if trimmed == "" {
		return false
	}
	if trimmed[0] == '{' || trimmed[0] == '}' {
		return true
	}
	w := firstWord(trimmed)
	if isBlockStart(w) || isPSEntry(w) {
		return true
	}
	lw := strings.ToLower(w)
	if _, ok := allKeys[lw]; ok {
		return true
	}
	return isIdent(w) && len(suggest(lw, keyNames)) > 0
}

// lex turns physical lines into logical lines: blank lines and comments
// are dropped, wrapped comments are recognised (with a warning), trailing
// comments are cut, and continued lines are joined.
func (p *parser) lex(lines []physLine) []*logicalLine {
	var out []*logicalLine
	// wrapFrom is the line of the comment ending in ':' that the next line
	// may continue, 0 when there is none.
	wrapFrom := 0
	for i := 0; i < len(lines); i++ {
		pl := lines[i]
		trimmed := trimSpace(pl.text)
		if pl.bad || trimmed == "" {
			wrapFrom = 0
			continue
		}
		if trimmed[0] == '#' {
			wrapFrom = 0
			if strings.HasSuffix(trimmed, ":") {
				wrapFrom = pl.num
			}
			continue
		}
		if wrapFrom > 0 && !isStatement(trimmed) {
			p.warnf(pl.num, 0, "taken as the rest of the comment on line %d (it follows a comment ending with ':'); start it with # to make that explicit", wrapFrom)
			if !strings.HasSuffix(trimmed, ":") {
				wrapFrom = 0
			}
			continue
		}
		wrapFrom = 0

		ll := &logicalLine{}
		indent := len(pl.text) - len(strings.TrimLeft(pl.text, " \t"))
		text, inQuote := cutComment(pl.text[indent:], false)
		ll.add(strings.TrimRight(text, " \t"), pl.num, indent+1)
		ps := isPSEntry(firstWord(string(ll.buf)))
		for {
			if endsWithContinuation(ll.buf) {
				ll.buf = ll.buf[:len(ll.buf)-1]
				if i+1 >= len(lines) {
					line, col := ll.pos(len(ll.buf))
					p.errorf(line, col, "line ends with \\ but no line follows it")
					break
				}
				i++
				next := lines[i]
				if next.bad {
					break
				}
				ind := len(next.text) - len(strings.TrimLeft(next.text, " \t"))
				t, q := cutComment(next.text[ind:], inQuote)
				inQuote = q
				ll.add(strings.TrimRight(t, " \t"), next.num, ind+1)
				continue
			}
			if ps && len(ll.buf) > 0 && ll.buf[len(ll.buf)-1] == ':' && i+1 < len(lines) {
				next := lines[i+1]
				nt := trimSpace(next.text)
				if next.bad || nt == "" || nt[0] == '#' || isStatement(nt) {
					break
				}
				i++
				ind := len(next.text) - len(strings.TrimLeft(next.text, " \t"))
				t, q := cutComment(next.text[ind:], inQuote)
				inQuote = q
				ll.add(strings.TrimRight(t, " \t"), next.num, ind+1)
				continue
			}
			break
		}
		ll.text, ll.buf = string(ll.buf), nil
		if ll.text != "" {
			out = append(out, ll)
		}
	}
	return out
}

// word is one white-space separated value of a key line, unquoted.
type word struct {
	text   string
	off    int // offset of the word's first byte in the logical line
	quoted bool
}

// words splits the logical line from offset off into words. A word may be
// a double-quoted string in which \" stands for " and \\ for \ (any other
// backslash is kept as written, so regexps need no doubling).
func (p *parser) words(ll *logicalLine, off int) ([]word, bool) {
	s := ll.text
	var out []word
	i := off
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return out, true
		}
		start := i
		if s[i] != '"' {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '"' {
					line, col := ll.pos(i)
					p.errorf(line, col, "unexpected \" inside a value: quote the whole value (\"...\")")
					return nil, false
				}
				i++
			}
			out = append(out, word{text: s[start:i], off: start})
			continue
		}
		var b strings.Builder
		i++
		closed := false
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				b.WriteByte(s[i+1])
				i += 2
				continue
			}
			if c == '"' {
				closed = true
				i++
				break
			}
			b.WriteByte(c)
			i++
		}
		if !closed {
			line, col := ll.pos(start)
			p.errorf(line, col, "quoted value is not closed: expected \" before the end of the line")
			return nil, false
		}
		if i < len(s) && !isSpace(s[i]) {
			line, col := ll.pos(i)
			p.errorf(line, col, "expected white space after the closing \", got %q", s[i])
			return nil, false
		}
		out = append(out, word{text: b.String(), off: start, quoted: true})
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
