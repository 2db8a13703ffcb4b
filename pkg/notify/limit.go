// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// limiter lets through at most burst notifications per service within a
// window of per, which opens at the first one of a quiet service. What
// comes past the burst is counted, and said in one summary when the
// window ends.
type limiter struct {
	burst   int
	per     time.Duration
	windows map[string]*window
}

type window struct {
	end        time.Time
	passed     int
	suppressed int
}

// summary is a window that ended with suppressed events.
type summary struct {
	service    string
	suppressed int
	end        time.Time
}

func newLimiter(burst int, per time.Duration) *limiter {
	return &limiter{burst: burst, per: per, windows: map[string]*window{}}
}

// allow says whether a notification of service may go at now; when not, it
// is counted against the service's window. Call due(now) first, so that an
// ended window is summed up before a new one opens.
func (l *limiter) allow(service string, now time.Time) bool {
	w := l.windows[service]
	if w == nil || !now.Before(w.end) {
		w = &window{end: now.Add(l.per)}
		l.windows[service] = w
	}
	if w.passed < l.burst {
		w.passed++
		return true
	}
	w.suppressed++
	return false
}

// due forgets the windows ended by now and returns the summaries of those
// that suppressed something, in the order they ended.
func (l *limiter) due(now time.Time) []summary {
	var out []summary
	for service, w := range l.windows {
		if now.Before(w.end) {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, summary{service: service, suppressed: w.suppressed, end: w.end})
		}
		delete(l.windows, service)
	}
	sortSummaries(out)
	return out
}

// next is when the first window with suppressed events ends; zero when
// none has any (the others are forgotten lazily).
func (l *limiter) next() time.Time {
	var first time.Time
	for _, w := range l.windows {
		if w.suppressed > 0 && (first.IsZero() || w.end.Before(first)) {
			first = w.end
		}
	}
	return first
}

func sortSummaries(s []summary) {
	slices.SortFunc(s, func(a, b summary) int {
		if c := a.end.Compare(b.end); c != 0 {
			return c
		}
		return strings.Compare(a.service, b.service)
	})
}

// summaryText is the summary's line: "12 more events of web suppressed in
// 10 m". Events without a service are pcheck's own.
func summaryText(service string, n int, per time.Duration) string {
	if service == "" {
		service = "pcheck"
	}
	events := "events"
	if n == 1 {
		events = "event"
	}
	return fmt.Sprintf("%d more %s of %s suppressed in %s", n, events, service, windowText(per))
}

// windowText says a window in the largest whole unit: "10 m", "90 s",
// "2 h"; a window of no whole second as Go says it.
func windowText(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d m", d/time.Minute)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return d.String()
}
