package control

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// FormatStatus writes padmin status's table:
//
//	SERVICE  STATE      PIDS  UPTIME  RESTARTS  LEFT  NEXT          LAST EVENT
//	apache2  Up         1234  3h02m   0         3     -             May 24 09:35:26 ('apache2',pid=1234) Up
//	tomcat   RetryOver  -     -       3         0     re-arm 9m30s  May 24 09:40:01 Retry over ('tomcat') action=continue
func FormatStatus(w io.Writer, services []ServiceStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tPIDS\tUPTIME\tRESTARTS\tLEFT\tNEXT\tLAST EVENT")
	for _, s := range services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n",
			s.Name, s.State, formatPIDs(s.PIDs), formatUptime(s.UptimeSeconds), s.Restarts, s.AttemptsLeft,
			formatNext(s), formatEvent(s.LastEvent))
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
	}
	return "-"
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
