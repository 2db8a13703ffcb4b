// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"net"
	"path"
	"strings"
	"time"
)

// block is a _bi_ block being read.
type block struct {
	name       string
	line       int
	awaitBrace bool // the name stood alone; { must follow on the next line
	errsAtOpen int

	lib     string // the library named by the block's first entry
	libLine int
	kind    Kind // 0 while unknown

	entries map[string]int // PS_ entry (upper case) -> line
	exts    []extension
	extSeen map[string]int

	hasExec, hasAction bool
	timeoutSet         bool
	pathAt             *keyPos // where argv[4] (path) was given

	check Check
	ok    bool // closed without errors
}

// extension is a key line of a block, its value read and checked; it is
// applied when the block closes and its kind is known.
type extension struct {
	key   *keySpec
	value any
	line  int
	col   int
}

func (p *parser) blockStart(ll *logicalLine, w string) {
	if p.block != nil {
		p.errAt(ll, 0, "%s: the block opened on line %d is not closed: expected } before a new block", p.block.name, p.block.line)
		p.closeBlock()
	}
	b := &block{
		name:       w,
		line:       ll.line(),
		errsAtOpen: len(p.errs),
		entries:    map[string]int{},
		extSeen:    map[string]int{},
	}
	applyCheckDefaults(&b.check)
	p.block = b
	switch {
	case !isIdent(w):
		p.errAt(ll, 0, "%q is not a block name: expected _bi_ followed by letters, digits or _", w)
	case len(w) == 4:
		p.errAt(ll, 0, "expected a block name after _bi_, e.g. _bi_webserv")
	}
	rest := trimSpace(ll.text[len(w):])
	switch {
	case rest == "":
		b.awaitBrace = true
	case rest == "{":
	case rest[0] == '{':
		p.errAt(ll, strings.IndexByte(ll.text, '{')+1, "expected nothing after {, got %q: put each entry on its own line", trimSpace(rest[1:]))
	default:
		p.errAt(ll, len(w), "expected { after the block name %s, got %q", w, rest)
	}
}

type field struct {
	text string
	off  int
}

// splitFields splits the text from off on ':' (not inside [...], so that
// an IPv6 host can be written [::1]) and trims each field.
func splitFields(s string, off int) []field {
	var out []field
	start, depth := off, 0
	for i := off; i <= len(s); i++ {
		if i == len(s) || s[i] == ':' && depth == 0 {
			f := s[start:i]
			lead := len(f) - len(strings.TrimLeft(f, " \t"))
			out = append(out, field{text: trimSpace(f), off: start + lead})
			start = i + 1
			continue
		}
		switch s[i] {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		}
	}
	return out
}

func isDefault(s string) bool { return s == "" || s == "-" }

// entry handles a PS_ line inside a block.
func (p *parser) entry(ll *logicalLine, w string, off int) {
	b := p.block
	kw := strings.ToUpper(w)
	if i := strings.IndexByte(kw, ':'); i > 0 && known(strings.ToLower(kw[:i]), entryNames) {
		p.errAt(ll, i, "%s: expected white space between the entry name and its fields", kw[:i])
		return
	}
	if !known(strings.ToLower(kw), entryNames) {
		p.errAt(ll, 0, "unknown entry %q: expected PS_INIT, PS_EXEC, PS_ACTION or PS_QUIT%s", w, didYouMean(w, []string{"PS_INIT", "PS_EXEC", "PS_ACTION", "PS_QUIT"}))
		return
	}
	if first, dup := b.entries[kw]; dup {
		p.errAt(ll, 0, "%s: duplicate entry in this block (first on line %d)", kw, first)
		return
	}
	b.entries[kw] = ll.line()
	switch kw {
	case "PS_EXEC":
		b.hasExec = true
	case "PS_ACTION":
		b.hasAction = true
	}
	if trimSpace(ll.text[off:]) == "" {
		p.errAt(ll, 0, "%s: expected its fields, type:file:call:...", kw)
		return
	}
	f := splitFields(ll.text, off)
	if !p.entryHead(ll, kw, f) {
		return
	}
	switch kw {
	case "PS_EXEC":
		p.exec(ll, f)
	case "PS_ACTION":
		p.action(ll, f)
	}
}

func known(s string, names []string) bool {
	for _, n := range names {
		if s == n {
			return true
		}
	}
	return false
}

// entryHead checks type, file and call, the fields every entry starts with.
func (p *parser) entryHead(ll *logicalLine, kw string, f []field) bool {
	b := p.block
	if len(f) < 3 {
		p.errAt(ll, 0, "%s: expected at least type:file:call, got %d field(s)", kw, len(f))
		return false
	}
	ok := true
	if !strings.EqualFold(f[0].text, "DLL") {
		p.errAt(ll, f[0].off, "%s: type %q is not DLL", kw, f[0].text)
		ok = false
	}
	lib := f[1].text
	switch {
	case lib == "":
		p.errAt(ll, f[1].off, "%s: file is empty: expected a library path such as /opt/HA/PSWE/lib/lib_bi_webserv.so", kw)
		ok = false
	case b.lib != "" && lib != b.lib:
		p.errAt(ll, f[1].off, "%s: library %s differs from %s named on line %d: all entries of a block must name the same library", kw, lib, b.lib, b.libLine)
		ok = false
	default:
		base := path.Base(lib)
		kind := libraryKind(base)
		if canon, ok := libraryAliases[base]; ok && b.lib == "" {
			// Once per block: its other entries must name the same file.
			line, col := ll.pos(f[1].off)
			p.warnf(line, col, "%s: library %s is taken as %s (%s): the guide's section 3.3 tables print this spelling, its sample writes %s", kw, base, canon, kind, canon)
		}
		if kind == 0 {
			names := make([]string, len(libraries))
			for i, l := range libraries {
				names[i] = l.name
			}
			p.errAt(ll, f[1].off, "%s: unknown library %q: expected lib_bi_webserv.so (http), lib_bi_webservs.so (https) or lib_bi_socket.so (tcp)%s", kw, path.Base(lib), didYouMean(path.Base(lib), names))
			ok = false
		}
		if b.lib == "" {
			line, _ := ll.pos(f[1].off)
			b.lib, b.libLine, b.kind = lib, line, kind
		}
	}
	if !strings.EqualFold(f[2].text, "DIRECT") {
		p.errAt(ll, f[2].off, "%s: call %q is not DIRECT", kw, f[2].text)
		ok = false
	}
	return ok
}

func libraryKind(base string) Kind {
	if canon, ok := libraryAliases[base]; ok {
		base = canon
	}
	for _, l := range libraries {
		if l.name == base {
			return l.kind
		}
	}
	return 0
}

// exec reads PS_EXEC left to right:
// type:file:call:timeout:interval:error:argc:argv[0]:...:argv[argc-1].
func (p *parser) exec(ll *logicalLine, f []field) {
	if len(f) < 7 {
		p.errAt(ll, 0, "PS_EXEC: expected type:file:call:timeout:interval:error:argc:duration:port[:host[:timeout[:path]]], got %d fields", len(f))
		return
	}
	e := &execLine{p: p, ll: ll, b: p.block, c: &p.block.check}
	e.head(f)
	argv := f[7:]
	e.argc(f[6], argv)
	e.duration(f[4], argv)
	if len(argv) > 1 {
		e.port(argv[1])
	}
	e.c.Host = DefaultHost
	if len(argv) > 2 && !isDefault(argv[2].text) {
		e.host(argv[2])
	}
	if len(argv) > 3 && !isDefault(argv[3].text) {
		e.timeout(argv[3])
	}
	if len(argv) > 4 && !isDefault(argv[4].text) {
		e.path(argv[4])
	}
}

// execLine is a PS_EXEC line being read into its block's check.
type execLine struct {
	p          *parser
	ll         *logicalLine
	b          *block
	c          *Check
	intervalOK bool // the interval is valid (or the default)
}

func (e *execLine) bad(fl field, format string, args ...any) {
	e.p.errAt(e.ll, fl.off, format, args...)
}

// secs reads a field in seconds, at least lo.
func (e *execLine) secs(fl field, what string, lo int64) (time.Duration, bool) {
	n, msg := number("PS_EXEC "+what, fl.text, lo, MaxSeconds, "second")
	if msg != "" {
		e.bad(fl, "%s", msg)
		return 0, false
	}
	return seconds(n), true
}

// head reads the fields before argc: timeout (ignored), interval, error.
func (e *execLine) head(f []field) {
	if !isDefault(f[3].text) {
		line, col := e.ll.pos(f[3].off)
		e.p.warnf(line, col, "PS_EXEC timeout field %q is ignored: the probe timeout is argv[3] (after duration, port and host)", f[3].text)
	}
	e.c.Interval, e.intervalOK = DefaultInterval, true
	if !isDefault(f[4].text) {
		e.c.Interval, e.intervalOK = e.secs(f[4], "interval", int64(MinInterval/time.Second))
	}
	switch f[5].text {
	case "", "-", "0":
	case "1":
		e.c.StopAfterDetect = true
	default:
		e.bad(f[5], "PS_EXEC error: %q is not 0 or 1 (0: keep checking after a detection, 1: stop this check after the first)", f[5].text)
	}
}

// argc checks the argument count against the argv fields that follow.
func (e *execLine) argc(argc field, argv []field) {
	if n, msg := number("PS_EXEC argc", argc.text, 0, MaxCount, ""); msg != "" {
		e.bad(argc, "%s", msg)
	} else if int(n) != len(argv) {
		e.bad(argc, "PS_EXEC argc: argc is %d but %d argv field(s) follow", n, len(argv))
	}
	if len(argv) < 2 {
		at := argc
		if len(argv) == 1 {
			at = argv[0]
		}
		e.bad(at, "PS_EXEC: argv[1] port is required: expected argc >= 2 and duration:port[:host[:timeout[:path]]] after it")
	}
	if len(argv) > 5 {
		e.bad(argv[5], "PS_EXEC: %d argv fields, expected at most 5: duration:port:host:timeout:path", len(argv))
	}
}

// duration reads argv[0] and checks it is not shorter than the interval.
func (e *execLine) duration(interval field, argv []field) {
	c := e.c
	c.Duration = DefaultDuration
	durationOK := true
	var durField *field
	if len(argv) > 0 && !isDefault(argv[0].text) {
		durField = &argv[0]
		c.Duration, durationOK = e.secs(argv[0], "duration", 1)
	}
	if !durationOK || !e.intervalOK || c.Duration >= c.Interval {
		return
	}
	if durField != nil {
		e.bad(*durField, "PS_EXEC duration: %d is shorter than the interval %d: expected duration >= interval", c.Duration/time.Second, c.Interval/time.Second)
	} else {
		e.bad(interval, "PS_EXEC interval: %d is longer than the default duration %d: give argv[0] duration >= interval", c.Interval/time.Second, DefaultDuration/time.Second)
	}
}

// port reads argv[1].
func (e *execLine) port(fl field) {
	if isDefault(fl.text) {
		e.bad(fl, "PS_EXEC port: argv[1] is empty: expected a port 1-65535")
	} else if !isDigits(fl.text) {
		e.bad(fl, "PS_EXEC port: %q is not a port number (expected 1-65535)", fl.text)
	} else if n, msg := number("PS_EXEC port", fl.text, 1, 65535, ""); msg != "" {
		e.bad(fl, "%s", msg)
	} else {
		e.c.Port = int(n)
	}
}

// host reads argv[2].
func (e *execLine) host(fl field) {
	h, ok := parseHost(fl.text)
	if !ok {
		e.bad(fl, "PS_EXEC host: %q is not a host name or IP address (write an IPv6 address as [::1])", fl.text)
		return
	}
	e.c.Host = h
}

// timeout reads argv[3], the per-probe timeout.
func (e *execLine) timeout(fl field) {
	t, ok := e.secs(fl, "timeout", 1)
	if !ok {
		return
	}
	e.c.Timeout = t
	e.b.timeoutSet = true
	if e.intervalOK && t > e.c.Interval {
		e.bad(fl, "PS_EXEC timeout: %d is longer than the interval %d: expected timeout <= interval", t/time.Second, e.c.Interval/time.Second)
	}
}

// path reads argv[4], the request path; closeBlock refuses it on tcp.
func (e *execLine) path(fl field) {
	line, col := e.ll.pos(fl.off)
	e.b.pathAt = &keyPos{line, col}
	if !strings.HasPrefix(fl.text, "/") || strings.ContainsAny(fl.text, " \t") {
		e.bad(fl, "PS_EXEC path: %q is not a request path: expected one starting with /", fl.text)
		return
	}
	e.c.Path = fl.text
}

func parseHost(h string) (string, bool) {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		ip := net.ParseIP(h[1 : len(h)-1])
		if ip == nil || ip.To4() != nil {
			return "", false
		}
		return h[1 : len(h)-1], true
	}
	if net.ParseIP(h) != nil {
		return h, true
	}
	if !isHostName(h) || strings.Contains(h, "..") {
		return "", false
	}
	return h, true
}

// action reads PS_ACTION right to left: the last field is argc (must be
// 0), the one before it error; whatever stands between call and error is
// ignored.
func (p *parser) action(ll *logicalLine, f []field) {
	c := &p.block.check
	if len(f) < 5 {
		p.errAt(ll, 0, "PS_ACTION: expected type:file:call:...:error:argc, got %d fields", len(f))
		return
	}
	argc, errf := f[len(f)-1], f[len(f)-2]
	if argc.text != "0" {
		p.errAt(ll, argc.off, "PS_ACTION argc: %q must be 0 (the last field)", argc.text)
	}
	switch errf.text {
	case "", "-", "0":
	case "1":
		c.ActionError = true
	default:
		p.errAt(ll, errf.off, "PS_ACTION error: %q is not 0 or 1 (0: on a failed kill do nothing more, 1: run retry_over_action)", errf.text)
	}
}

// extension handles a key line inside a block.
func (p *parser) extension(ll *logicalLine, k *keySpec, off int) {
	b := p.block
	if first, dup := b.extSeen[k.name]; dup {
		p.errAt(ll, 0, "%s: set twice in this block (first on line %d)", k.name, first)
		return
	}
	b.extSeen[k.name] = ll.line()
	w, ok := p.single(ll, k.name, off)
	if !ok {
		return
	}
	v, msg := k.value.word(k.name, w.text)
	if msg != "" {
		p.errAt(ll, w.off, "%s", msg)
		return
	}
	line, col := ll.pos(w.off)
	b.exts = append(b.exts, extension{key: k, value: v, line: line, col: col})
}

// applyExtensions applies the block's key lines allowed on its kind, then
// runs their checks.
func (p *parser) applyExtensions(b *block) {
	c := &b.check
	var applied []*extension
	for i := range b.exts {
		e := &b.exts[i]
		if !e.key.allowedOn(b.kind) {
			p.errorf(e.line, e.col, "%s: "+e.key.onlyMsg, e.key.name, b.kind)
			continue
		}
		e.key.setCheck(c, e.value)
		applied = append(applied, e)
	}
	for _, e := range applied {
		for _, check := range e.key.closeChecks {
			check(p, c, e)
		}
	}
}

// closeBlock checks the block as a whole and applies its defaults.
func (p *parser) closeBlock() {
	b := p.block
	p.block = nil
	if b.awaitBrace {
		p.errorf(b.line, 0, "%s: expected { after the block name", b.name)
	}
	if !b.hasExec {
		p.errorf(b.line, 0, "%s: block has no PS_EXEC entry (each block needs PS_EXEC and PS_ACTION)", b.name)
	}
	if !b.hasAction {
		p.errorf(b.line, 0, "%s: block has no PS_ACTION entry (each block needs PS_EXEC and PS_ACTION)", b.name)
	}
	c := &b.check
	c.Kind, c.Block, c.Line, c.Library = b.kind, b.name, b.line, b.lib
	p.applyExtensions(b)
	if !b.timeoutSet {
		c.Timeout = min(c.Interval, DefaultTimeoutCap)
	}
	switch b.kind {
	case KindTCP:
		if b.pathAt != nil {
			p.errorf(b.pathAt.line, b.pathAt.col, "PS_EXEC path: argv[4] is only for http and https checks: a tcp check takes duration:port[:host[:timeout]]")
		}
		c.Path = ""
	case KindHTTP, KindHTTPS:
		if c.Path == "" {
			c.Path = DefaultPath
		}
	}
	if b.kind == KindHTTPS && c.TLSServerName == "" {
		c.TLSServerName = c.Host
	}
	b.ok = len(p.errs) == b.errsAtOpen
	p.blocks = append(p.blocks, b)
}
