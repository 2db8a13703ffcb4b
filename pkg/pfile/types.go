// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"fmt"
	"strings"
	"time"

	"github.com/pwatch/pwatch/pkg/argrule"
)

// Service is one pfile after parsing, validation and defaults: the rules
// for one watched service.
type Service struct {
	// Name is the file's base name without ".pfile"; padmin addresses the
	// service by it.
	Name string
	// File is the name the pfile was parsed under (its path when loaded
	// from disk), for messages.
	File string

	// Process is the absolute path of the watched executable.
	Process string
	// Args is the RE2 regexp the process's arguments (argv[1:] joined by
	// one space) must match, as written; "" means any arguments. ArgsRule is
	// its compiled form (nil when Args is ""). The match is unanchored:
	// write ^...$ to match the whole argument string.
	Args     string
	ArgsRule *argrule.Rule
	// PIDFile, when not "", is read for the main PID instead of a scan.
	PIDFile string
	// User, when not "", is the user name or numeric uid the processes
	// must run as (real user). It is not resolved at parse time.
	User string
	// MinCount is how many top-level matching processes the service has.
	MinCount int

	// RestartScript is the restart command: an absolute path and its
	// arguments, executed without a shell.
	RestartScript  []string
	RestartTimeout time.Duration
	RetryCount     int
	Grace          time.Duration
	RetryInterval  time.Duration
	// RetryBackoff is the factor the pause after a failed attempt grows
	// by, attempt after attempt; 1 (the default) keeps it at
	// RetryInterval. RetryIntervalMax caps it (0 without backoff).
	RetryBackoff     float64
	RetryIntervalMax time.Duration
	// StableUptime is how long the service must stay Up before its
	// backoff is forgotten (default: 60 s, or Grace if smaller).
	StableUptime time.Duration
	// RearmAfter is the cool-down after a retry over (continue, or a
	// reboot that does not happen) after which the service is tried
	// again with its attempts reset; 0: never (padmin start only).
	RearmAfter time.Duration

	RetryOverAction Action
	// RetryOverScript is nil when none is set.
	RetryOverScript []string
	// RecoveryTimeout is 0 when none is set (only allowed with
	// RetryOverAction == ActionReboot).
	RecoveryTimeout time.Duration
	KillTimeout     time.Duration
	StartOnLoad     bool

	// Limits on the whole service tree (limits.go); 0 is no limit.
	// MemoryMax is in bytes, CPUMax in percent of one core.
	MemoryMax  int64
	CPUMax     int
	FDsMax     int
	ThreadsMax int
	// LimitFor is how long a limit must be exceeded, sample after sample,
	// before LimitAction; LimitGrace is the wait between SIGTERM and
	// SIGKILL of a limit restart.
	LimitFor    time.Duration
	LimitAction LimitAction
	LimitGrace  time.Duration

	// Checks holds one entry per _bi_ block, in file order.
	Checks []Check
}

// Check is one _bi_ stall-check block.
type Check struct {
	Kind Kind
	// Block is the block's name as written (e.g. "_bi_webserv"); Line is
	// the line it starts on.
	Block string
	Line  int
	// Library is the file field of the block's entries (its base name
	// chose Kind).
	Library string

	// Interval is the probe period.
	Interval time.Duration
	// StopAfterDetect is PS_EXEC error 1: stop this block's checks after
	// the first detection (death watching goes on).
	StopAfterDetect bool
	// Duration is how long without a successful probe makes a stall.
	Duration time.Duration
	Port     int
	// Host is the probe's target, a name or an IP address (IPv6 without
	// brackets).
	Host string
	// Timeout is the per-probe timeout.
	Timeout time.Duration
	// Path is the HTTP request path; "" for tcp checks.
	Path string
	// ActionError is PS_ACTION error 1: when the kill after a stall
	// fails, run the service's retry_over_action.
	ActionError bool

	// TLSVerify, TLSCA and TLSServerName apply to https checks only.
	// TLSServerName defaults to Host for https, and is "" otherwise.
	TLSVerify     bool
	TLSCA         string
	TLSServerName string
	// ExpectStatus is the range of HTTP statuses counted as alive; the zero
	// value means any response.
	ExpectStatus StatusRange
	// ListenCheck asks for the sock_diag LISTEN-socket check on Port.
	ListenCheck bool
}

// Kind is the built-in check a block runs, chosen by its library name.
type Kind int

const (
	KindHTTP Kind = iota + 1
	KindHTTPS
	KindTCP
)

func (k Kind) String() string {
	switch k {
	case KindHTTP:
		return "http"
	case KindHTTPS:
		return "https"
	case KindTCP:
		return "tcp"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText writes the kind as http, https or tcp.
func (k Kind) MarshalText() ([]byte, error) {
	if k < KindHTTP || k > KindTCP {
		return nil, fmt.Errorf("pfile: invalid Kind %d", int(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads http, https or tcp.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "http":
		*k = KindHTTP
	case "https":
		*k = KindHTTPS
	case "tcp":
		*k = KindTCP
	default:
		return fmt.Errorf("pfile: %q is not one of http, https, tcp", b)
	}
	return nil
}

// libraries maps a block entry's file base name to its check.
var libraries = []struct {
	name string
	kind Kind
}{
	{"lib_bi_webserv.so", KindHTTP},
	{"lib_bi_webservs.so", KindHTTPS},
	{"lib_bi_socket.so", KindTCP},
}

// libraryAliases are other spellings accepted, with a warning, for a
// library of the table above: the guide's section 3.3 tables print
// lib_bi_websevs.so where its sample (and the product) has
// lib_bi_webservs.so, and pfiles copied from those tables must load.
var libraryAliases = map[string]string{
	"lib_bi_websevs.so": "lib_bi_webservs.so",
}

// Action is what a retry over does.
type Action int

const (
	ActionContinue Action = iota
	ActionShutdown
	ActionExit
	ActionReboot
)

var actionNames = []string{"continue", "shutdown", "exit", "reboot"}

func (a Action) String() string {
	if a >= 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// ParseAction reads continue, shutdown, exit or reboot (case-insensitive).
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if strings.EqualFold(s, n) {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not one of %s", s, strings.Join(actionNames, ", "))
}

// MarshalText writes the action's name.
func (a Action) MarshalText() ([]byte, error) {
	if a < 0 || int(a) >= len(actionNames) {
		return nil, fmt.Errorf("pfile: invalid Action %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads an action's name.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return fmt.Errorf("pfile: %w", err)
	}
	*a = v
	return nil
}

// StatusRange is an inclusive range of HTTP status codes. The zero value
// means any status.
type StatusRange struct {
	Min, Max int
}

// Any reports whether the range accepts every status.
func (r StatusRange) Any() bool { return r.Min == 0 && r.Max == 0 }

// Contains reports whether status is in the range.
func (r StatusRange) Contains(status int) bool {
	return r.Any() || (status >= r.Min && status <= r.Max)
}

func (r StatusRange) String() string {
	switch {
	case r.Any():
		return "any"
	case r.Min == r.Max:
		return fmt.Sprint(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Error is one problem in a pfile. Line is 1-based (0 when the problem is
// the file as a whole, e.g. it cannot be read); Col is a 1-based byte
// column, 0 when no column is useful.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error formats the problem as file:line:col: message, leaving out what is
// unknown.
func (e *Error) Error() string { return format(e.File, e.Line, e.Col, e.Msg) }

// Errors is every problem found in one or more pfiles, sorted by file
// order, line and column. A non-nil error returned by this package is
// always an Errors.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Warning is something in a pfile that loads but probably is not what was
// meant, e.g. a line taken as the rest of a comment.
type Warning struct {
	File string
	Line int
	Col  int
	Msg  string
}

// String formats the warning as file:line: warning: message.
func (w Warning) String() string { return format(w.File, w.Line, w.Col, "warning: "+w.Msg) }

func format(file string, line, col int, msg string) string {
	switch {
	case line <= 0:
		return fmt.Sprintf("%s: %s", file, msg)
	case col <= 0:
		return fmt.Sprintf("%s:%d: %s", file, line, msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, line, col, msg)
}
