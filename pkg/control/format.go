// SPDX-License-Identifier: Apache-2.0

package control

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pwatch/pwatch/internal/quote"
)

// FormatStatus writes padmin status's table:
//
//	SERVICE  STATE      PIDS  UPTIME  RESTARTS  LEFT  NEXT          CHECKS  MEM       CPU  FDS  LAST EVENT                                LAST DEATH
//	apache2  Up         1234  3h02m   0         3     -             ok      412.5MiB  12%  88   May 24 09:35:26 ('apache2',pid=1234) Up  May 24 09:35:20 killed by the OOM killer
//	tomcat   RetryOver  -     -       3         0     re-arm 9m30s  -       -         -    -    May 24 09:40:01 Retry over ('tomcat') action=continue  -
//
// The daemon's texts quote what came from outside (a sender's comm), so
// each cell also passes quote.Line: a raw control byte, tab or newline
// that reached the table anyway is quoted, never sent to the terminal.
func FormatStatus(w io.Writer, services []ServiceStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tPIDS\tUPTIME\tRESTARTS\tLEFT\tNEXT\tCHECKS\t"+usageHeader+"\tLAST EVENT\tLAST DEATH")
	for _, s := range services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			quote.Line(s.Name), quote.Line(s.State), formatPIDs(s.PIDs), formatUptime(s.UptimeSeconds), s.Restarts, s.AttemptsLeft,
			formatNext(s), quote.Line(formatChecks(s.Checks)), formatUsage(s.Usage), quote.Line(formatEvent(s.LastEvent)), quote.Line(formatDeath(s.LastDeath)))
	}
	return tw.Flush()
}

// formatNext says what is due: the next attempt, or the re-arm.
func formatNext(s ServiceStatus) string {
	in := func(secs float64) string {
		if secs < 1 {
			return "now"
		}
		return formatUptime(int64(secs + 0.5))
	}
	switch {
	case s.NextAttemptIn != nil:
		return "attempt " + in(*s.NextAttemptIn)
	case s.RearmIn != nil:
		return "re-arm " + in(*s.RearmIn)
	case s.Step != "":
		return s.Step
	}
	return "-"
}

// formatDeath is the last death's time and cause, as the ending line says it.
func formatDeath(d *Death) string {
	if d == nil {
		return "-"
	}
	return d.Time.Local().Format(time.Stamp) + " " + d.Text
}

// formatChecks is the state of the stall-check blocks: "-" without any,
// the state alone for one, BLOCK=STATE for each of several. A failing
// block says since when (local time, as syslog stamps) and how much
// failure time was not counted (starvation).
func formatChecks(checks []CheckStatus) string {
	if len(checks) == 0 {
		return "-"
	}
	parts := make([]string, len(checks))
	for i, c := range checks {
		st := c.State
		if st == "failing" && c.FailingSince != nil {
			st += " since " + c.FailingSince.Local().Format(time.Stamp)
		}
		if c.NotCountedSeconds > 0 && (c.State == "failing" || c.State == "starting") {
			st += fmt.Sprintf(" (%s not counted)", formatUptime(int64(c.NotCountedSeconds)))
		}
		if len(checks) > 1 {
			st = c.Block + "=" + st
		}
		parts[i] = st
	}
	return strings.Join(parts, ", ")
}

func formatPIDs(pids []int) string {
	if len(pids) == 0 {
		return "-"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// formatUptime keeps the two largest units: 42s, 5m07s, 3h02m, 2d03h.
func formatUptime(seconds int64) string {
	if seconds <= 0 {
		return "-"
	}
	d, h, m, s := seconds/86400, seconds/3600%24, seconds/60%60, seconds%60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd%02dh", d, h)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// formatEvent stamps the event as syslog does, in local time.
func formatEvent(e *Event) string {
	if e == nil {
		return "-"
	}
	return e.Time.Local().Format(time.Stamp) + " " + e.Text
}
