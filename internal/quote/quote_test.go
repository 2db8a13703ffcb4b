// SPDX-License-Identifier: Apache-2.0

package quote

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kill", "kill"},
		{"", ""},
		{"nginx: worker", "nginx: worker"},
		{"x\n<11>F\033[8m", `x\x0a<11>F\x1b[8m`},
		{"a\rb\tc\x00d\x7f", `a\x0db\x09c\x00d\x7f`},
		{"bin\x01\x02\xfe\xff", `bin\x01\x02\xfe\xff`},
		{"bad\xc3(utf8", `bad\xc3(utf8`},
		{`back\slash`, `back\x5cslash`},
		{"café ☕ 日本", "café ☕ 日本"},
		{"real \ufffd stays", "real \ufffd stays"},
		{"c1 \u009b31m", `c1 \xc2\x9b31m`},
		{"bidi \u202eevil", `bidi \xe2\x80\xaeevil`},
		{"line\u2028sep", `line\xe2\x80\xa8sep`},
		{"nbsp\u00a0", `nbsp\xc2\xa0`},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := unquote(String(tc.in)); err != nil || back != tc.in {
			t.Errorf("String(%q) reads back as %q, %v", tc.in, back, err)
		}
	}
}

// Line leaves text built from quoted parts alone (no second escaping of
// their backslashes) and quotes whole what still holds a raw control.
func TestLine(t *testing.T) {
	quoted := "sent by pid 1 (" + String("x\n\033") + ", uid 0)"
	if got := Line(quoted); got != quoted {
		t.Errorf("Line(%q) = %q: quoted text changed", quoted, got)
	}
	if got, want := Line("a\nb\\c"), `a\x0ab\x5cc`; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if !Printable(`a\b ☕`) || Printable("a\nb") || Printable("\xff") {
		t.Error("Printable is wrong")
	}
}

// FuzzString: whatever the input, the output is valid UTF-8 of printable
// runes only (no control, no line break, no escape), Printable, and reads
// back to the input.
func FuzzString(f *testing.F) {
	for _, s := range []string{"kill", "x\n<11>F\033[8m", "\xff\xfe", `\x41`, "\u202e", "\u0085", "日本\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := String(s)
		if !utf8.ValidString(q) {
			t.Fatalf("String(%q) = %q: not UTF-8", s, q)
		}
		for _, r := range q {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("String(%q) = %q: holds %U", s, q, r)
			}
		}
		if !Printable(q) || Line(q) != q {
			t.Fatalf("String(%q) = %q is not left alone by Line", s, q)
		}
		if back, err := unquote(q); err != nil || back != s {
			t.Fatalf("String(%q) = %q reads back as %q, %v", s, q, back, err)
		}
		if Printable(s) && Line(s) != s || !Printable(s) && Line(s) != q {
			t.Fatalf("Line(%q) = %q", s, Line(s))
		}
	})
}

// unquote is String's inverse: every backslash starts \xNN.
func unquote(q string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] != '\\' {
			b.WriteByte(q[i])
			continue
		}
		if i+4 > len(q) || q[i+1] != 'x' {
			return "", fmt.Errorf("stray backslash at %d", i)
		}
		n, err := strconv.ParseUint(q[i+2:i+4], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}
