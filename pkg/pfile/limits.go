// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults and bounds of the limit keys.
const (
	DefaultLimitFor   = 30 * time.Second
	DefaultLimitGrace = 10 * time.Second
	// MaxMemory bounds memory_max: 1 PiB.
	MaxMemory = 1 << 50
	// MaxCPU bounds cpu_max: a thousand cores.
	MaxCPU = 100000
)

// LimitAction is what a limit exceeded for limit_for does.
type LimitAction string

const (
	// LimitRestart restarts the service gently (SIGTERM, SIGKILL after
	// limit_grace, then the restart script).
	LimitRestart LimitAction = "restart"
	// LimitLog only logs the line.
	LimitLog LimitAction = "log"
)

// HasLimits says whether any limit is set: only then is the service's
// tree sampled.
func (s *Service) HasLimits() bool {
	return s.MemoryMax > 0 || s.CPUMax > 0 || s.FDsMax > 0 || s.ThreadsMax > 0
}

// sizeValue is a number of bytes with an optional K, M or G suffix (powers
// of 1024).
var sizeValue = valueType{
	form: "bytes, or with `K`, `M`, `G` (1024-based): `512M`",
	word: func(key, v string) (any, string) {
		n, ok := parseSize(v)
		if !ok {
			return nil, fmt.Sprintf("%s: %q is not a size: expected a whole number of bytes, or with K, M or G, e.g. 512M, from 1 to 1024T", key, v)
		}
		return n, ""
	},
}

func parseSize(v string) (int64, bool) {
	mult := int64(1)
	if i := len(v) - 1; i > 0 {
		if m := strings.IndexByte("KMG", v[i]&^0x20); m >= 0 {
			mult, v = int64(1)<<(10*(m+1)), v[:i]
		}
	}
	if !isDigits(v) || len(v) > 16 {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > MaxMemory/mult {
		return 0, false
	}
	return n * mult, true
}

var limitActionValue = valueType{
	form: "`restart`, `log`",
	word: func(key, v string) (any, string) {
		switch a := LimitAction(strings.ToLower(v)); a {
		case LimitRestart, LimitLog:
			return a, ""
		}
		return nil, fmt.Sprintf("%s: %q is not restart or log%s", key, v, didYouMean(v, []string{"restart", "log"}))
	},
	show: func(v any) string { return "`" + string(v.(LimitAction)) + "`" },
}

// onlyWithLimits: the keys that tune the limits need one.
func onlyWithLimits(p *parser, at *keyPos, key string) {
	if at != nil && !p.svc.HasLimits() {
		p.errorf(at.line, at.col, "%s: only allowed with memory_max, cpu_max, fds_max or threads_max (no limit is set)", key)
	}
}

// intRange is a whole number from lo to hi; what is the docs' unit.
func intRange(lo, hi int64, what string) valueType {
	return valueType{
		form: fmt.Sprintf("integer %d-%d (%s)", lo, hi, what),
		word: func(key, v string) (any, string) {
			n, msg := number(key, v, lo, hi, "")
			return int(n), msg
		},
		show: plain,
	}
}

func optionalInt(n int) *int {
	if n <= 0 {
		return nil
	}
	return &n
}

func optionalInt64(n int64) *int64 {
	if n <= 0 {
		return nil
	}
	return &n
}
