// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"fmt"
	"strings"
	"time"

	"github.com/pwatch/pwatch/pkg/argrule"
)

//go:generate go run ./internal/keydoc ../../docs/pfile.md

// keySpec is one pfile key: everything the parser, the defaults, the
// validation, the JSON view (padmin check --json, padmin rules) and the
// reference in docs/pfile.md need to know about it. Adding a key is adding
// a row to processKeys or blockKeys (and a test).
type keySpec struct {
	name string
	// value reads and checks the value; form overrides its "value" column
	// in the docs.
	value valueType
	form  string
	// dflt is the value before the file sets one (nil: the zero value);
	// def overrides how the docs show it.
	dflt any
	def  string
	// required, when not "", makes the key mandatory; it says what the
	// key is in the "missing required key" error.
	required string
	// doc is the key's "meaning" paragraph in docs/pfile.md.
	doc string
	// example is a valid value, for the tests.
	example string
	// json is the field of Rules (CheckRules for block keys) it fills.
	json string

	// Process keys: set stores the value, rule fills the JSON view, and
	// checks run once the whole file is read (at is where the key was
	// set, nil when it was not) for rules across keys and derived
	// defaults.
	set    func(*Service, any)
	rule   func(*Service, *Rules)
	checks []func(p *parser, at *keyPos)

	// Block keys (extension lines): only lists the checks the key is
	// allowed on (nil: all), onlyMsg the error otherwise; setCheck and
	// checkRule as set and rule; closeChecks run on the applied line when
	// its block closes.
	block       bool
	only        []Kind
	onlyMsg     string
	setCheck    func(*Check, any)
	checkRule   func(*Check, *CheckRules)
	closeChecks []func(p *parser, c *Check, e *extension)
}

// processKeys are the keys of the process entry, in the order of the
// docs (and of "did you mean" suggestions).
var processKeys = []keySpec{
	{
		name: "process", value: absPath, required: "the absolute path of the watched executable",
		doc:     "the watched executable: matched against `/proc/PID/exe`, or `argv[0]` where exe is an interpreter",
		example: "/usr/sbin/nginx", json: "process",
		set:  func(s *Service, v any) { s.Process = v.(string) },
		rule: func(s *Service, r *Rules) { r.Process = s.Process },
	},
	{
		name: "args", value: argsRuleValue, def: "none (any)",
		doc:     "must match the process's arguments (argv[1:] joined by one space)",
		example: "-k start", json: "args",
		set:  func(s *Service, v any) { s.ArgsRule = v.(*argrule.Rule); s.Args = s.ArgsRule.String() },
		rule: func(s *Service, r *Rules) { r.Args = optional(s.Args) },
	},
	{
		name: "pidfile", value: absPath, def: "none",
		doc:     "read the service's main PID from here instead of scanning (the PID is still checked against `process`, `args`, the owner rule of `user` and its start time); refused when others than root and `user` could write it (below)",
		example: "/run/apache2/apache2.pid", json: "pidfile",
		set:  func(s *Service, v any) { s.PIDFile = v.(string) },
		rule: func(s *Service, r *Rules) { r.PIDFile = optional(s.PIDFile) },
	},
	{
		name: "user", value: userValue, def: "none (root's only)",
		doc:     "only processes of this real user match; without it, only root's (see below); not resolved when the pfile is checked",
		example: "www-data", json: "user",
		set:  func(s *Service, v any) { s.User = v.(string) },
		rule: func(s *Service, r *Rules) { r.User = optional(s.User) },
	},
	{
		name: "min_count", value: count(1), dflt: DefaultMinCount,
		doc:     "top-level matching processes the service has",
		example: "2", json: "min_count",
		set:  func(s *Service, v any) { s.MinCount = v.(int) },
		rule: func(s *Service, r *Rules) { r.MinCount = s.MinCount },
	},
	{
		name: "restart_script", value: command, required: "the absolute path of the script that brings the service back",
		doc:     "run to bring the service back, without a shell; need not exist when the pfile is checked (unless anyone could create it there: missing from a sticky `/tmp` fails), but must pass the trust rule when it does, at load and again before each run ([behaviour.md](behaviour.md#trust)); it runs in a fixed environment ([behaviour.md](behaviour.md#the-environment-of-what-pcheck-runs))",
		example: "/etc/pwatch/scripts/x --fast", json: "restart_script",
		set:  func(s *Service, v any) { s.RestartScript = v.([]string) },
		rule: func(s *Service, r *Rules) { r.RestartScript = s.RestartScript },
	},
	{
		name: "restart_timeout", value: secondsValue(1), dflt: DefaultRestartTimeout,
		doc:     "the script plus the new process's appearance must finish within this",
		example: "30", json: "restart_timeout",
		set:  func(s *Service, v any) { s.RestartTimeout = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.RestartTimeout = secs(s.RestartTimeout) },
	},
	{
		name: "retry_count", value: count(0), dflt: DefaultRetryCount,
		doc:     "restart attempts allowed within `grace`",
		example: "5", json: "retry_count",
		set:  func(s *Service, v any) { s.RetryCount = v.(int) },
		rule: func(s *Service, r *Rules) { r.RetryCount = s.RetryCount },
	},
	{
		name: "grace", value: secondsValue(1), dflt: DefaultGrace,
		doc:     "window over which `retry_count` is counted",
		example: "3600", json: "grace",
		set:  func(s *Service, v any) { s.Grace = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.Grace = secs(s.Grace) },
	},
	{
		name: "retry_interval", value: secondsValue(0), dflt: time.Duration(DefaultRetryInterval),
		doc:     "pause between a failed attempt and the next",
		example: "5", json: "retry_interval",
		set:  func(s *Service, v any) { s.RetryInterval = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.RetryInterval = secs(s.RetryInterval) },
	},
	{
		name: "retry_backoff", value: factorValue, dflt: 1.0,
		doc:     "each failed attempt in a row multiplies the pause by this, from `retry_interval` (which must then be ≥ 1) up to `retry_interval_max`; see [the restart policy](behaviour.md#the-restart-policy)",
		example: "1.5", json: "retry_backoff",
		set:    func(s *Service, v any) { s.RetryBackoff = v.(float64) },
		rule:   func(s *Service, r *Rules) { r.RetryBackoff = s.RetryBackoff },
		checks: []func(*parser, *keyPos){checkBackoff},
	},
	{
		name: "retry_interval_max", value: secondsValue(1), form: "seconds ≥ `retry_interval`",
		def:     fmt.Sprintf("%d (or `retry_interval`, if longer)", secs(DefaultRetryIntervalMax)),
		doc:     "only with `retry_backoff`: the longest pause",
		example: "600", json: "retry_interval_max",
		set: func(s *Service, v any) { s.RetryIntervalMax = v.(time.Duration) },
		rule: func(s *Service, r *Rules) {
			r.RetryIntervalMax = optionalSecs(s.RetryIntervalMax)
		},
		checks: []func(*parser, *keyPos){checkIntervalMax},
	},
	{
		name: "stable_uptime", value: secondsValue(1),
		def:     fmt.Sprintf("%d, or `grace` if shorter", secs(DefaultStableUptime)),
		doc:     "once the service has stayed Up this long, its backoff is forgotten (the next pause is `retry_interval` again)",
		example: "120", json: "stable_uptime",
		set:  func(s *Service, v any) { s.StableUptime = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.StableUptime = secs(s.StableUptime) },
		checks: []func(*parser, *keyPos){func(p *parser, at *keyPos) {
			if at == nil {
				p.svc.StableUptime = min(DefaultStableUptime, p.svc.Grace)
			}
		}},
	},
	{
		name: "rearm_after", value: secondsValue(1), def: "none",
		doc:     "only with `retry_over_action continue` or `reboot`: after a retry over (or a reboot refused by the guard), try the service again this long later with its attempts reset; without it, only `padmin start` does",
		example: "900", json: "rearm_after",
		set:  func(s *Service, v any) { s.RearmAfter = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.RearmAfter = optionalSecs(s.RearmAfter) },
		checks: []func(*parser, *keyPos){func(p *parser, at *keyPos) {
			if a := p.svc.RetryOverAction; at != nil && (a == ActionShutdown || a == ActionExit) {
				p.errorf(at.line, at.col, "rearm_after: only allowed with retry_over_action continue or reboot (retry_over_action is %s: pcheck ends)", a)
			}
		}},
	},
	{
		name: "retry_over_action", value: actionValue, dflt: ActionContinue,
		doc:     "what a retry over does",
		example: "reboot", json: "retry_over_action",
		set:  func(s *Service, v any) { s.RetryOverAction = v.(Action) },
		rule: func(s *Service, r *Rules) { r.RetryOverAction = s.RetryOverAction },
	},
	{
		name: "retry_over_script", value: command, def: "none",
		doc:     "run once on retry over, before the action; the trust rule applies as to `restart_script`",
		example: "/etc/pwatch/scripts/notify", json: "retry_over_script",
		set:  func(s *Service, v any) { s.RetryOverScript = v.([]string) },
		rule: func(s *Service, r *Rules) { r.RetryOverScript = s.RetryOverScript },
	},
	{
		name: "recovery_timeout", value: secondsValue(1), def: "none",
		doc:     "only with `retry_over_action reboot`: reboot when the service is not back this long after its failure",
		example: "300", json: "recovery_timeout",
		set:  func(s *Service, v any) { s.RecoveryTimeout = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.RecoveryTimeout = optionalSecs(s.RecoveryTimeout) },
		checks: []func(*parser, *keyPos){func(p *parser, at *keyPos) {
			if a := p.svc.RetryOverAction; at != nil && a != ActionReboot {
				p.errorf(at.line, at.col, "recovery_timeout: only allowed with retry_over_action reboot (retry_over_action is %s)", a)
			}
		}},
	},
	{
		name: "kill_timeout", value: secondsValue(0), dflt: DefaultKillTimeout,
		doc:     "after SIGTERM, wait this long before SIGKILL",
		example: "3", json: "kill_timeout",
		set:  func(s *Service, v any) { s.KillTimeout = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.KillTimeout = secs(s.KillTimeout) },
	},
	{
		name: "start_on_load", value: yesNoValue, dflt: true,
		doc:     "a service found not running when loaded goes through the restart flow",
		example: "no", json: "start_on_load",
		set:  func(s *Service, v any) { s.StartOnLoad = v.(bool) },
		rule: func(s *Service, r *Rules) { r.StartOnLoad = s.StartOnLoad },
	},
	// The limits on the service tree (limits.go).
	{
		name: "memory_max", value: sizeValue, def: "none",
		doc:     "restart the service (`limit_action`) when its whole tree (the top processes and every descendant) holds more memory than this for `limit_for`: the sum of the processes' PSS from `/proc/PID/smaps_rollup` (shared pages split among their sharers); see [operations.md](operations.md#resource-limits)",
		example: "512M", json: "memory_max",
		set:  func(s *Service, v any) { s.MemoryMax = v.(int64) },
		rule: func(s *Service, r *Rules) { r.MemoryMax = optionalInt64(s.MemoryMax) },
	},
	{
		name: "cpu_max", value: intRange(1, MaxCPU, "percent of one core"), def: "none",
		doc:     "the same for the tree's CPU over the last sample period, in percent of one core (`250` is two and a half cores)",
		example: "90", json: "cpu_max",
		set:  func(s *Service, v any) { s.CPUMax = v.(int) },
		rule: func(s *Service, r *Rules) { r.CPUMax = optionalInt(s.CPUMax) },
	},
	{
		name: "fds_max", value: count(1), def: "none",
		doc:     "the same for the tree's open file descriptors",
		example: "4096", json: "fds_max",
		set:  func(s *Service, v any) { s.FDsMax = v.(int) },
		rule: func(s *Service, r *Rules) { r.FDsMax = optionalInt(s.FDsMax) },
	},
	{
		name: "threads_max", value: count(1), def: "none",
		doc:     "the same for the tree's threads",
		example: "500", json: "threads_max",
		set:  func(s *Service, v any) { s.ThreadsMax = v.(int) },
		rule: func(s *Service, r *Rules) { r.ThreadsMax = optionalInt(s.ThreadsMax) },
	},
	{
		name: "limit_for", value: secondsValue(0), dflt: DefaultLimitFor,
		doc:     "only with a limit: it acts once exceeded on every sample for this long (one spike does nothing)",
		example: "60", json: "limit_for",
		set:    func(s *Service, v any) { s.LimitFor = v.(time.Duration) },
		rule:   func(s *Service, r *Rules) { r.LimitFor = secs(s.LimitFor) },
		checks: []func(*parser, *keyPos){func(p *parser, at *keyPos) { onlyWithLimits(p, at, "limit_for") }},
	},
	{
		name: "limit_action", value: limitActionValue, dflt: LimitRestart,
		doc:     "only with a limit: `restart` (SIGTERM to the tree, SIGKILL after `limit_grace`, then `restart_script` with the reason `limit`) or `log` (the line only)",
		example: "log", json: "limit_action",
		set:    func(s *Service, v any) { s.LimitAction = v.(LimitAction) },
		rule:   func(s *Service, r *Rules) { r.LimitAction = s.LimitAction },
		checks: []func(*parser, *keyPos){func(p *parser, at *keyPos) { onlyWithLimits(p, at, "limit_action") }},
	},
	{
		name: "limit_grace", value: secondsValue(0), dflt: DefaultLimitGrace,
		doc:     "only with a limit: after a limit restart's SIGTERM, wait this long before SIGKILL",
		example: "20", json: "limit_grace",
		set:  func(s *Service, v any) { s.LimitGrace = v.(time.Duration) },
		rule: func(s *Service, r *Rules) { r.LimitGrace = secs(s.LimitGrace) },
		checks: []func(*parser, *keyPos){func(p *parser, at *keyPos) {
			onlyWithLimits(p, at, "limit_grace")
			if at != nil && p.svc.LimitAction == LimitLog {
				p.warnf(at.line, at.col, "limit_grace has no effect with limit_action log (nothing is killed)")
			}
		}},
	},
}

// httpsOnly is the restriction of the tls keys.
const httpsOnly = "only for https checks (lib_bi_webservs.so); this block is %s"

// blockKeys are the extension lines of a _bi_ block.
var blockKeys = []keySpec{
	{
		name: "tls_verify", value: yesNoValue, block: true, dflt: false,
		only: []Kind{KindHTTPS}, onlyMsg: httpsOnly,
		doc:     "verify the server certificate (https only)",
		example: "yes", json: "tls_verify",
		setCheck:  func(c *Check, v any) { c.TLSVerify = v.(bool) },
		checkRule: func(c *Check, r *CheckRules) { r.TLSVerify = c.TLSVerify },
	},
	{
		name: "tls_ca", value: absPath, block: true, def: "system pool",
		only: []Kind{KindHTTPS}, onlyMsg: httpsOnly,
		doc:     "CA bundle for `tls_verify yes` (https only; a warning without `tls_verify yes`)",
		example: "/etc/ssl/ca.pem", json: "tls_ca",
		setCheck:  func(c *Check, v any) { c.TLSCA = v.(string) },
		checkRule: func(c *Check, r *CheckRules) { r.TLSCA = optional(c.TLSCA) },
		closeChecks: []func(*parser, *Check, *extension){func(p *parser, c *Check, e *extension) {
			if !c.TLSVerify {
				p.warnf(e.line, e.col, "tls_ca has no effect without tls_verify yes")
			}
		}},
	},
	{
		name: "tls_server_name", value: hostNameValue, block: true, def: "the host",
		only: []Kind{KindHTTPS}, onlyMsg: httpsOnly,
		doc:     "SNI and verification name (https only)",
		example: "www.example.com", json: "tls_server_name",
		setCheck:  func(c *Check, v any) { c.TLSServerName = v.(string) },
		checkRule: func(c *Check, r *CheckRules) { r.TLSServerName = optional(c.TLSServerName) },
	},
	{
		name: "expect_status", value: statusValue, block: true, def: "any",
		only: []Kind{KindHTTP, KindHTTPS}, onlyMsg: "only for http and https checks; this block is %s",
		doc:     "other responses count as failed probes (http, https)",
		example: "200-399", json: "expect_status",
		setCheck: func(c *Check, v any) { c.ExpectStatus = v.(StatusRange) },
		checkRule: func(c *Check, r *CheckRules) {
			if !c.ExpectStatus.Any() {
				st := c.ExpectStatus
				r.ExpectStatus = &st
			}
		},
	},
	{
		name: "listen_check", value: yesNoValue, block: true, dflt: true,
		doc:     "also check through the kernel that the service owns a LISTEN socket on the port and its accept queue is not full",
		example: "no", json: "listen_check",
		setCheck:  func(c *Check, v any) { c.ListenCheck = v.(bool) },
		checkRule: func(c *Check, r *CheckRules) { r.ListenCheck = c.ListenCheck },
	},
}

// keyNames holds every key, in table order; allKeys indexes the rows.
var (
	keyNames []string
	allKeys  = map[string]*keySpec{}
)

func init() {
	for _, t := range [][]keySpec{processKeys, blockKeys} {
		for i := range t {
			keyNames = append(keyNames, t[i].name)
			allKeys[t[i].name] = &t[i]
		}
	}
}

// allowedOn reports whether a block key may stand in a block of kind k
// (an unknown kind, 0, allows everything: its error is reported already).
func (k *keySpec) allowedOn(kind Kind) bool {
	if k.only == nil || kind == 0 {
		return true
	}
	for _, o := range k.only {
		if o == kind {
			return true
		}
	}
	return false
}

// applyDefaults sets every process key's default.
func applyDefaults(s *Service) {
	for i := range processKeys {
		if k := &processKeys[i]; k.dflt != nil {
			k.set(s, k.dflt)
		}
	}
}

// applyCheckDefaults sets every block key's default.
func applyCheckDefaults(c *Check) {
	for i := range blockKeys {
		if k := &blockKeys[i]; k.dflt != nil {
			k.setCheck(c, k.dflt)
		}
	}
}

// finishKeys runs the checks that need the whole file, key by key.
func (p *parser) finishKeys() {
	for i := range processKeys {
		k := &processKeys[i]
		var at *keyPos
		if pos, ok := p.set[k.name]; ok {
			at = &pos
		}
		if at == nil && k.required != "" {
			p.errorf(1, 0, "missing required key %s (%s)", k.name, k.required)
		}
		for _, check := range k.checks {
			check(p, at)
		}
	}
}

// checkBackoff: retry_backoff grows retry_interval, so that must not be
// 0; without retry_interval_max the pause grows to its default.
func checkBackoff(p *parser, at *keyPos) {
	s := p.svc
	if at == nil {
		return
	}
	if s.RetryInterval == 0 {
		p.errorf(at.line, at.col, "retry_backoff: grows retry_interval, which is 0: set retry_interval to 1 second or more")
	}
	if _, ok := p.set["retry_interval_max"]; !ok {
		s.RetryIntervalMax = max(DefaultRetryIntervalMax, s.RetryInterval)
	}
}

// checkIntervalMax: retry_interval_max caps the backoff, so it needs
// retry_backoff and must not be less than retry_interval.
func checkIntervalMax(p *parser, at *keyPos) {
	s := p.svc
	if at == nil {
		return
	}
	if _, ok := p.set["retry_backoff"]; !ok {
		p.errorf(at.line, at.col, "retry_interval_max: only allowed with retry_backoff (without it every pause is retry_interval)")
	} else if s.RetryIntervalMax < s.RetryInterval {
		p.errorf(at.line, at.col, "retry_interval_max: %d is less than retry_interval (%d)", secs(s.RetryIntervalMax), secs(s.RetryInterval))
	}
}

// ---- value types ----

// valueType is how a key's value is written and read. A single-word value
// has word; a value that takes the rest of the line has line.
type valueType struct {
	// form is the docs' "value" column.
	form string
	// word checks one word, returning the value or the error message.
	word func(key, v string) (any, string)
	// line reads the rest of the line from off, reporting its own errors.
	line func(p *parser, ll *logicalLine, key string, off int) (any, bool)
	// show writes a default as the docs do.
	show func(any) string
}

func plain(v any) string { return fmt.Sprint(v) }

var absPath = valueType{
	form: "absolute path",
	word: func(key, v string) (any, string) {
		if !isAbsPath(v) {
			return nil, fmt.Sprintf("%s: %q is not an absolute path", key, v)
		}
		return v, ""
	},
}

var userValue = valueType{
	form: "name or numeric uid",
	word: func(key, v string) (any, string) {
		if isDigits(v) {
			if _, msg := number(key, v, 0, 1<<32-2, ""); msg != "" {
				return nil, msg
			}
		} else if !isUserName(v) {
			return nil, fmt.Sprintf("%s: %q is not a user name or numeric uid", key, v)
		}
		return v, ""
	},
}

// count is a whole number from lo to MaxCount.
func count(lo int64) valueType {
	return valueType{
		form: fmt.Sprintf("integer %d-%d", lo, MaxCount),
		word: func(key, v string) (any, string) {
			n, msg := number(key, v, lo, MaxCount, "")
			return int(n), msg
		},
		show: plain,
	}
}

// secondsValue is a whole number of seconds from lo to MaxSeconds.
func secondsValue(lo int64) valueType {
	return valueType{
		form: fmt.Sprintf("seconds ≥ %d", lo),
		word: func(key, v string) (any, string) {
			n, msg := number(key, v, lo, MaxSeconds, "second")
			return seconds(n), msg
		},
		show: func(v any) string { return fmt.Sprint(secs(v.(time.Duration))) },
	}
}

var factorValue = valueType{
	form: fmt.Sprintf("factor 1-%d, up to 3 decimals (`2`, `1.5`)", MaxBackoff),
	word: func(key, v string) (any, string) {
		f, ok := factor(v)
		if !ok {
			return nil, fmt.Sprintf("%s: %q is not a factor from 1 to %d (a number such as 2 or 1.5, at most 3 decimals)", key, v, MaxBackoff)
		}
		return f, ""
	},
	show: plain,
}

var actionValue = valueType{
	form: "`" + strings.Join(actionNames, "`, `") + "`",
	word: func(key, v string) (any, string) {
		a, err := ParseAction(v)
		if err != nil {
			return nil, fmt.Sprintf("%s: %v%s", key, err, didYouMean(v, actionNames))
		}
		return a, ""
	},
	show: func(v any) string { return "`" + v.(Action).String() + "`" },
}

var yesNoValue = valueType{
	form: "`yes`, `no`",
	word: func(key, v string) (any, string) {
		b, ok := yesNo(v)
		if !ok {
			return nil, fmt.Sprintf("%s: %q is not yes or no", key, v)
		}
		return b, ""
	},
	show: func(v any) string {
		if v.(bool) {
			return "`yes`"
		}
		return "`no`"
	},
}

var hostNameValue = valueType{
	form: "host name",
	word: func(key, v string) (any, string) {
		h, ok := parseHost(v)
		if !ok || strings.Contains(v, "[") {
			return nil, fmt.Sprintf("%s: %q is not a host name", key, v)
		}
		return h, ""
	},
}

var statusValue = valueType{
	form: "`200` or `200-399` (100-599)",
	word: func(key, v string) (any, string) {
		m := statusArg.FindStringSubmatch(v)
		if m == nil {
			return nil, fmt.Sprintf("%s: %q is not a status or range: expected e.g. 200 or 200-399", key, v)
		}
		lo, _ := number("", m[1], 0, 999, "")
		hi := lo
		if m[2] != "" {
			hi, _ = number("", m[2], 0, 999, "")
		}
		if lo < 100 || hi > 599 || lo > hi {
			return nil, fmt.Sprintf("%s: %q is not a range of HTTP statuses: expected MIN-MAX within 100-599, MIN <= MAX", key, v)
		}
		return StatusRange{Min: int(lo), Max: int(hi)}, ""
	},
}

// argsRuleValue takes the rest of the line as written (or one quoted
// word): an RE2 regexp.
var argsRuleValue = valueType{
	form: "RE2 regexp",
	line: func(p *parser, ll *logicalLine, key string, off int) (any, bool) {
		raw := trimSpace(ll.text[off:])
		if strings.HasPrefix(raw, `"`) {
			w, ok := p.single(ll, key, off)
			if !ok {
				return nil, false
			}
			raw = w.text
		}
		if raw == "" {
			p.errAt(ll, 0, "%s: expected a regexp", key)
			return nil, false
		}
		rule, err := argrule.Compile(raw)
		if err != nil {
			p.errAt(ll, len(ll.text)-len(strings.TrimLeft(ll.text[off:], " \t")), "%s: invalid regexp: %v", key, err)
			return nil, false
		}
		return rule, true
	},
}

// command is an absolute path and its arguments, split into words.
var command = valueType{
	form: "absolute path [args...]",
	line: func(p *parser, ll *logicalLine, key string, off int) (any, bool) {
		ws, ok := p.words(ll, off)
		if !ok {
			return nil, false
		}
		if len(ws) == 0 {
			p.errAt(ll, 0, "%s: expected an absolute path and optional arguments", key)
			return nil, false
		}
		if !isAbsPath(ws[0].text) {
			p.errAt(ll, ws[0].off, "%s: %q is not an absolute path", key, ws[0].text)
			return nil, false
		}
		argv := make([]string, len(ws))
		for i, w := range ws {
			argv[i] = w.text
		}
		return argv, true
	},
}

func optionalSecs(d time.Duration) *int64 {
	if d <= 0 {
		return nil
	}
	t := secs(d)
	return &t
}
