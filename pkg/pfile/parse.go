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

var processKeyNames = []string{
	"process", "args", "pidfile", "user", "min_count", "restart_script",
	"restart_timeout", "retry_count", "grace", "retry_interval",
	"retry_backoff", "retry_interval_max", "stable_uptime", "rearm_after",
	"retry_over_action", "retry_over_script", "recovery_timeout",
	"kill_timeout", "start_on_load",
}

var extensionKeyNames = []string{
	"tls_verify", "tls_ca", "tls_server_name", "expect_status", "listen_check",
}

var entryNames = []string{"ps_init", "ps_exec", "ps_action", "ps_quit"}

// keyNames holds every key; allKeys maps each to whether it is an
// extension (block) key.
var (
	keyNames = append(append([]string{}, processKeyNames...), extensionKeyNames...)
	allKeys  = func() map[string]bool {
		m := map[string]bool{}
		for _, k := range processKeyNames {
			m[k] = false
		}
		for _, k := range extensionKeyNames {
			m[k] = true
		}
		return m
	}()
)

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
	p.svc = &Service{
		File:           name,
		Name:           ServiceName(name),
		MinCount:       DefaultMinCount,
		RestartTimeout: DefaultRestartTimeout,
		RetryCount:     DefaultRetryCount,
		Grace:          DefaultGrace,
		RetryInterval:  DefaultRetryInterval,
		RetryBackoff:   1,
		KillTimeout:    DefaultKillTimeout,
		StartOnLoad:    true,
	}
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
		ext, known := allKeys[lw]
		switch {
		case !known:
			if !isIdent(w) {
				p.errAt(ll, 0, "expected a key, a _bi_ block or a PS_ entry, got %q", w)
				return
			}
			p.errAt(ll, 0, "unknown key %q%s", w, didYouMean(lw, keyNames))
		case ext && p.block == nil:
			p.errAt(ll, 0, "%s is only allowed inside a _bi_ block", lw)
		case ext:
			p.extension(ll, lw, rest)
		default:
			if p.block != nil {
				p.errAt(ll, 0, "%s belongs to the process entry: put it outside the _bi_ block", lw)
			}
			p.processKey(ll, lw, rest)
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

var (
	userName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$`)
	hostName  = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$`)
	statusArg = regexp.MustCompile(`^([0-9]{3})(?:-([0-9]{3}))?$`)
)

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

// finishBackoff checks the backoff keys against each other and fills in
// their defaults.
func (p *parser) finishBackoff() {
	s := p.svc
	backoff, hasBackoff := p.set["retry_backoff"]
	if at, ok := p.set["retry_interval_max"]; ok && !hasBackoff {
		p.errorf(at.line, at.col, "retry_interval_max: only allowed with retry_backoff (without it every pause is retry_interval)")
	}
	if hasBackoff {
		if s.RetryInterval == 0 {
			p.errorf(backoff.line, backoff.col, "retry_backoff: grows retry_interval, which is 0: set retry_interval to 1 second or more")
		}
		if at, ok := p.set["retry_interval_max"]; ok && s.RetryIntervalMax < s.RetryInterval {
			p.errorf(at.line, at.col, "retry_interval_max: %d is less than retry_interval (%d)", secs(s.RetryIntervalMax), secs(s.RetryInterval))
		}
		if _, ok := p.set["retry_interval_max"]; !ok {
			s.RetryIntervalMax = max(DefaultRetryIntervalMax, s.RetryInterval)
		}
	}
	if _, ok := p.set["stable_uptime"]; !ok {
		s.StableUptime = min(DefaultStableUptime, s.Grace)
	}
}

// ---- process entry ----

func (p *parser) processKey(ll *logicalLine, key string, off int) {
	if first, dup := p.set[key]; dup {
		p.errAt(ll, 0, "%s: set twice (first on line %d)", key, first.line)
		return
	}
	line, col := ll.pos(0)
	p.set[key] = keyPos{line, col}
	s := p.svc

	switch key {
	case "args":
		raw := trimSpace(ll.text[off:])
		if strings.HasPrefix(raw, `"`) {
			w, ok := p.single(ll, key, off)
			if !ok {
				return
			}
			raw = w.text
		}
		if raw == "" {
			p.errAt(ll, 0, "args: expected a regexp")
			return
		}
		re, err := regexp.Compile(raw)
		if err != nil {
			p.errAt(ll, len(ll.text)-len(strings.TrimLeft(ll.text[off:], " \t")), "args: invalid regexp: %v", err)
			return
		}
		s.Args, s.ArgsRE = raw, re
		return
	case "restart_script", "retry_over_script":
		ws, ok := p.words(ll, off)
		if !ok {
			return
		}
		if len(ws) == 0 {
			p.errAt(ll, 0, "%s: expected an absolute path and optional arguments", key)
			return
		}
		if !isAbsPath(ws[0].text) {
			p.errAt(ll, ws[0].off, "%s: %q is not an absolute path", key, ws[0].text)
			return
		}
		argv := make([]string, len(ws))
		for i, w := range ws {
			argv[i] = w.text
		}
		if key == "restart_script" {
			s.RestartScript = argv
		} else {
			s.RetryOverScript = argv
		}
		return
	}

	w, ok := p.single(ll, key, off)
	if !ok {
		return
	}
	v := w.text
	bad := func(format string, args ...any) { p.errAt(ll, w.off, format, args...) }
	switch key {
	case "process", "pidfile":
		if !isAbsPath(v) {
			bad("%s: %q is not an absolute path", key, v)
			return
		}
		if key == "process" {
			s.Process = v
		} else {
			s.PIDFile = v
		}
	case "user":
		if isDigits(v) {
			if _, msg := number(key, v, 0, 1<<32-2, ""); msg != "" {
				bad("%s", msg)
				return
			}
		} else if !userName.MatchString(v) {
			bad("user: %q is not a user name or numeric uid", v)
			return
		}
		s.User = v
	case "min_count", "retry_count":
		lo := int64(1)
		if key == "retry_count" {
			lo = 0
		}
		n, msg := number(key, v, lo, MaxCount, "")
		if msg != "" {
			bad("%s", msg)
			return
		}
		if key == "min_count" {
			s.MinCount = int(n)
		} else {
			s.RetryCount = int(n)
		}
	case "retry_backoff":
		f, ok := factor(v)
		if !ok {
			bad("retry_backoff: %q is not a factor from 1 to %d (a number such as 2 or 1.5, at most 3 decimals)", v, MaxBackoff)
			return
		}
		s.RetryBackoff = f
	case "restart_timeout", "grace", "recovery_timeout", "retry_interval", "kill_timeout",
		"retry_interval_max", "stable_uptime", "rearm_after":
		lo := int64(1)
		if key == "retry_interval" || key == "kill_timeout" {
			lo = 0
		}
		n, msg := number(key, v, lo, MaxSeconds, "second")
		if msg != "" {
			bad("%s", msg)
			return
		}
		d := seconds(n)
		switch key {
		case "restart_timeout":
			s.RestartTimeout = d
		case "grace":
			s.Grace = d
		case "recovery_timeout":
			s.RecoveryTimeout = d
		case "retry_interval":
			s.RetryInterval = d
		case "kill_timeout":
			s.KillTimeout = d
		case "retry_interval_max":
			s.RetryIntervalMax = d
		case "stable_uptime":
			s.StableUptime = d
		case "rearm_after":
			s.RearmAfter = d
		}
	case "retry_over_action":
		a, err := ParseAction(v)
		if err != nil {
			bad("retry_over_action: %v%s", err, didYouMean(v, actionNames))
			return
		}
		s.RetryOverAction = a
	case "start_on_load":
		b, ok := yesNo(v)
		if !ok {
			bad("start_on_load: %q is not yes or no", v)
			return
		}
		s.StartOnLoad = b
	}
}

// finish checks what needs the whole file: required keys, combinations,
// duplicate checks.
func (p *parser) finish() {
	s := p.svc
	if _, ok := p.set["process"]; !ok {
		p.errorf(1, 0, "missing required key process (the absolute path of the watched executable)")
	}
	if _, ok := p.set["restart_script"]; !ok {
		p.errorf(1, 0, "missing required key restart_script (the absolute path of the script that brings the service back)")
	}
	if at, ok := p.set["recovery_timeout"]; ok && s.RetryOverAction != ActionReboot {
		p.errorf(at.line, at.col, "recovery_timeout: only allowed with retry_over_action reboot (retry_over_action is %s)", s.RetryOverAction)
	}
	p.finishBackoff()
	if at, ok := p.set["rearm_after"]; ok && (s.RetryOverAction == ActionShutdown || s.RetryOverAction == ActionExit) {
		p.errorf(at.line, at.col, "rearm_after: only allowed with retry_over_action continue or reboot (retry_over_action is %s: pcheck ends)", s.RetryOverAction)
	}
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
