// SPDX-License-Identifier: Apache-2.0

package msg

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// Facility is a syslog facility code (RFC 3164 section 4.1.1).
type Facility int

// The facilities syslog(3) knows, by the names of --syslog-facility. kern
// is not one: glibc never lets a process log as the kernel, so the zero
// Facility means "the default", Daemon.
var facilities = map[string]Facility{
	"user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// Daemon is the default facility.
const Daemon Facility = 3

// ParseFacility reads a facility name as --syslog-facility takes it:
// "daemon", "local3", ... (case-insensitive; a "LOG_" prefix, as in
// syslog.h, is accepted too).
func ParseFacility(name string) (Facility, error) {
	key := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(name)), "log_")
	if f, ok := facilities[key]; ok {
		return f, nil
	}
	names := make([]string, 0, len(facilities))
	for n := range facilities {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("unknown syslog facility %q (want one of %s)", name, strings.Join(names, ", "))
}

func (f Facility) String() string {
	for n, code := range facilities {
		if code == f {
			return n
		}
	}
	return fmt.Sprintf("facility(%d)", int(f))
}

// Severity is a syslog severity code (RFC 3164 section 4.1.1).
type Severity int

const (
	SeverityError   Severity = 3
	SeverityWarning Severity = 4
	SeverityInfo    Severity = 6
	SeverityDebug   Severity = 7
)

// SeverityOf maps a slog level to the syslog severity of its line.
func SeverityOf(l slog.Level) Severity {
	switch {
	case l >= slog.LevelError:
		return SeverityError
	case l >= slog.LevelWarn:
		return SeverityWarning
	case l >= slog.LevelInfo:
		return SeverityInfo
	}
	return SeverityDebug
}

// Priority is the PRI value of a line: facility*8 + severity.
func Priority(f Facility, s Severity) int { return int(f)*8 + int(s) }
