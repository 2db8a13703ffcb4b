// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits that the language does not state but every value must respect.
const (
	// MaxSeconds bounds every value given in seconds: one year.
	MaxSeconds = 365 * 24 * 60 * 60
	// MaxCount bounds min_count and retry_count.
	MaxCount = 1000000
)

// Defaults of the process entry and of the stall checks.
const (
	DefaultMinCount       = 1
	DefaultRestartTimeout = 60 * time.Second
	DefaultRetryCount     = 3
	DefaultGrace          = 86400 * time.Second
	DefaultRetryInterval  = 0
	// DefaultRetryIntervalMax caps the backoff when retry_backoff is set
	// and retry_interval_max is not.
	DefaultRetryIntervalMax = 300 * time.Second
	// DefaultStableUptime is stable_uptime's default, unless grace is
	// shorter.
	DefaultStableUptime = 60 * time.Second
	// MaxBackoff bounds retry_backoff.
	MaxBackoff         = 10
	DefaultKillTimeout = 10 * time.Second
	DefaultInterval    = 60 * time.Second
	DefaultDuration    = 600 * time.Second
	DefaultHost        = "127.0.0.1"
	DefaultPath        = "/"
	// MinInterval is the shortest probe period.
	MinInterval = 10 * time.Second
	// A probe's default timeout is min(interval, DefaultTimeoutCap).
	DefaultTimeoutCap = 10 * time.Second
)

var entryNames = []string{"ps_init", "ps_exec", "ps_action", "ps_quit"}

// Parse reads one pfile. name is the file name used in messages; the
// service's name is its base name without ".pfile". It returns either the
// service or an Errors holding every problem of the file, never both;
// warnings are returned in both cases.
func Parse(name string, src []byte) (svc *Service, warns []Warning, err error) {
	p := &parser{file: name, set: map[string]keyPos{}}
	defer func() {
		if r := recover(); r != nil {
			// A bug, never a property of the input: report it as an error
			// of the file rather than crash a daemon that reloads pfiles.
			svc = nil
			err = Errors{{File: name, Line: 1, Msg: fmt.Sprintf("internal parser error: %v", r)}}
		}
	}()
	p.svc = &Service{File: name, Name: ServiceName(name)}
	applyDefaults(p.svc)
	if p.svc.Name == "" || strings.ContainsAny(p.svc.Name, " \t\r\n/") {
		p.errorf(1, 0, "%q is not a usable service name: name the file NAME.pfile, NAME without spaces", p.svc.Name)
	}
	for _, ll := range p.lex(p.splitLines(src)) {
		p.statement(ll)
	}
	if p.block != nil {
		p.errorf(p.block.line, 0, "%s: block is not closed: expected } before the end of the file", p.block.name)
		p.closeBlock()
	}
	p.finish()
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Col < b.Col
		})
		return nil, p.warns, p.errs
	}
	return p.svc, p.warns, nil
}

// ServiceName is the service name of a pfile path: its base name without
// ".pfile".
func ServiceName(file string) string {
	return strings.TrimSuffix(filepath.Base(file), ".pfile")
}

type keyPos struct{ line, col int }

type parser struct {
	file  string
	errs  Errors
	warns []Warning
	svc   *Service
	set   map[string]keyPos // process keys seen, where

	block  *block   // the open block, if any
	blocks []*block // closed blocks, in order
}

func (p *parser) errorf(line, col int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(line, col int, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// errAt reports an error at an offset of a logical line.
func (p *parser) errAt(ll *logicalLine, off int, format string, args ...any) {
	line, col := ll.pos(off)
	p.errorf(line, col, format, args...)
}

// statement handles one logical line.
func (p *parser) statement(ll *logicalLine) {
	s := ll.text
	switch s[0] {
	case '}':
		if rest := trimSpace(s[1:]); rest != "" {
			p.errAt(ll, len(s)-len(strings.TrimLeft(s[1:], " \t")), "expected nothing after }, got %q", rest)
		}
		if p.block == nil {
			p.errAt(ll, 0, "unexpected }: no _bi_ block is open")
			return
		}
		p.closeBlock()
		return
	case '{':
		if p.block != nil && p.block.awaitBrace {
			p.block.awaitBrace = false
			if rest := trimSpace(s[1:]); rest != "" {
				p.errAt(ll, 1, "expected nothing after {, got %q", rest)
			}
			return
		}
		p.errAt(ll, 0, "unexpected {: a block starts with its _bi_ name, e.g. _bi_webserv{")
		return
	}
	if p.block != nil && p.block.awaitBrace {
		p.errorf(p.block.line, 0, "%s: expected { after the block name", p.block.name)
		p.block.awaitBrace = false
	}

	w := firstWord(s)
	lw := strings.ToLower(w)
	rest := len(w)
	switch {
	case isBlockStart(w):
		p.blockStart(ll, w)
	case isPSEntry(w):
		if p.block == nil {
			p.errAt(ll, 0, "%s outside a _bi_ block: expected _bi_NAME{ before it", w)
			return
		}
		p.entry(ll, w, rest)
	default:
		k, known := allKeys[lw]
		switch {
		case !known:
			if !isIdent(w) {
				p.errAt(ll, 0, "expected a key, a _bi_ block or a PS_ entry, got %q", w)
				return
			}
			p.errAt(ll, 0, "unknown key %q%s", w, didYouMean(lw, keyNames))
		case k.block && p.block == nil:
			p.errAt(ll, 0, "%s is only allowed inside a _bi_ block", lw)
		case k.block:
			p.extension(ll, k, rest)
		default:
			if p.block != nil {
				p.errAt(ll, 0, "%s belongs to the process entry: put it outside the _bi_ block", lw)
			}
			p.processKey(ll, k, rest)
		}
	}
}

// ---- values ----

// single returns the only word of a key line, reporting a missing value or
// extra words.
func (p *parser) single(ll *logicalLine, key string, off int) (word, bool) {
	ws, ok := p.words(ll, off)
	if !ok {
		return word{}, false
	}
	if len(ws) == 0 {
		p.errAt(ll, 0, "%s: expected a value", key)
		return word{}, false
	}
	if len(ws) > 1 {
		p.errAt(ll, ws[1].off, "%s: expected one value, got %d (quote a value that holds spaces)", key, len(ws))
		return word{}, false
	}
	return ws[0], true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// number parses a decimal whole number within [lo, hi]. what names the
// value in messages; unit is "second" or "".
func number(what, s string, lo, hi int64, unit string) (int64, string) {
	units := func(n int64) string {
		if unit == "" {
			return ""
		}
		if n == 1 {
			return " " + unit
		}
		return " " + unit + "s"
	}
	if !isDigits(s) {
		return 0, fmt.Sprintf("%s: %q is not a whole number (expected at least %d%s)", what, s, lo, units(lo))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > hi {
		return 0, fmt.Sprintf("%s: %s is too large (expected at most %d%s)", what, s, hi, units(hi))
	}
	if n < lo {
		return 0, fmt.Sprintf("%s: %d is too small (expected at least %d%s)", what, n, lo, units(lo))
	}
	return n, ""
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

func isAbsPath(s string) bool {
	return path.IsAbs(s) && (s == "/" || !strings.HasSuffix(s, "/"))
}

// The lengths are checked apart from the patterns: a bounded repeat such
// as {0,252} compiles to a program of that many copies (100 KB of heap
// that pcheck kept for its whole life).
var (
	userChars = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*\$?$`)
	hostChars = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	statusArg = regexp.MustCompile(`^([0-9]{3})(?:-([0-9]{3}))?$`)
)

// isUserName: a letter or _, then at most 31 letters, digits, _ . or -,
// and perhaps a final $ (a Samba machine account).
func isUserName(s string) bool {
	return userChars.MatchString(s) && len(strings.TrimSuffix(s, "$")) <= 32
}

// isHostName: at most 253 letters, digits, _ . or -, not starting with .
// or -.
func isHostName(s string) bool { return hostChars.MatchString(s) && len(s) <= 253 }

func yesNo(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

// factor parses retry_backoff: a decimal from 1 to MaxBackoff with at
// most three decimals.
func factor(s string) (float64, bool) {
	if !backoffArg.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && f >= 1 && f <= MaxBackoff
}

var backoffArg = regexp.MustCompile(`^[0-9]{1,2}(\.[0-9]{1,3})?$`)

// ---- process entry ----

func (p *parser) processKey(ll *logicalLine, k *keySpec, off int) {
	if first, dup := p.set[k.name]; dup {
		p.errAt(ll, 0, "%s: set twice (first on line %d)", k.name, first.line)
		return
	}
	line, col := ll.pos(0)
	p.set[k.name] = keyPos{line, col}
	if v, ok := p.value(ll, k, off); ok {
		k.set(p.svc, v)
	}
}

// value reads a key's value from off, reporting what is wrong with it.
func (p *parser) value(ll *logicalLine, k *keySpec, off int) (any, bool) {
	if k.value.line != nil {
		return k.value.line(p, ll, k.name, off)
	}
	w, ok := p.single(ll, k.name, off)
	if !ok {
		return nil, false
	}
	v, msg := k.value.word(k.name, w.text)
	if msg != "" {
		p.errAt(ll, w.off, "%s", msg)
		return nil, false
	}
	return v, true
}

// finish checks what needs the whole file: required keys, combinations,
// duplicate checks.
func (p *parser) finish() {
	s := p.svc
	p.finishKeys()
	for i, b := range p.blocks {
		if !b.ok {
			continue
		}
		for _, o := range p.blocks[:i] {
			if o.ok && o.check.Kind == b.check.Kind && o.check.Port == b.check.Port &&
				o.check.Host == b.check.Host && o.check.Path == b.check.Path {
				p.errorf(b.line, 0, "%s: the same %s check of %s port %d as the block on line %d", b.name, b.check.Kind, b.check.Host, b.check.Port, o.line)
				break
			}
		}
		s.Checks = append(s.Checks, b.check)
	}
}
