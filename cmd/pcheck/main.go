// SPDX-License-Identifier: Apache-2.0

// Command pcheck is pwatch's daemon: `pcheck run PFILE|DIR...` watches the
// services its pfiles describe and brings them back when they die or stall.
// All the work is in pkg/daemon; this file only maps flags into its config.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/cliapp"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/daemon"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/notify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// run runs pcheck with the command line args: help and --version go to
// stdout, the log to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &cli.App{
		Name:  "pcheck",
		Usage: "watch services and bring them back when they die or stall",
		Description: "pcheck is pwatch's daemon. pcheck run watches the services its pfiles describe " +
			"(see pfile(5)): it learns of a death from the kernel, kills what is left of the service's " +
			"process tree, runs its restart script and retries within a grace window; its stall checks " +
			"probe HTTP, HTTPS and TCP and the kernel's listening socket. It runs as root, normally " +
			"under pwatch.service. SIGHUP re-reads the pfiles; SIGTERM and SIGINT stop pcheck and " +
			"leave the watched services running. Each flag can be given as the environment variable " +
			"named beside it (pwatch.service reads them from /etc/default/pwatch).",
		Commands: []*cli.Command{{
			Name:      "run",
			Usage:     "watch the services of these pfiles (files, or directories of *.pfile)",
			ArgsUsage: "PFILE|DIR...",
			Flags:     runFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cliapp.UsageError("run: name at least one pfile or directory")
				}
				return runDaemon(c, stderr)
			},
		}},
		Writer:    stdout,
		ErrWriter: stderr,
	}
	cliapp.Setup(app)
	cliapp.SetManSections(app,
		cliapp.ManSection{Title: "EXIT STATUS", Body: "0 after a clean stop or a retry-over *shutdown*; " +
			"1 on an error (a pfile with errors refuses the start, printing every error); 2 on bad usage; " +
			"3 after a retry-over *exit*, for a cluster manager to fail the node over " +
			"(pwatch.service does not restart pcheck then)."},
		cliapp.ManSection{Title: "FILES", Body: "*/etc/pwatch/pfile.d/*\n: the pfiles pwatch.service watches.\n\n" +
			"*/etc/pwatch/scripts/*\n: the restart scripts they name.\n\n" +
			"*/etc/default/pwatch*\n: pcheck's flags as PWATCH\\_ variables.\n\n" +
			"*/var/lib/pwatch/*\n: the reboot guard's counter.\n\n" +
			"*/run/pwatch/pcheck.sock*\n: the control socket padmin talks to."},
		cliapp.ManSection{Title: "SEE ALSO", Body: "**padmin**(8), **pfile**(5), **systemctl**(1); " +
			"*/usr/share/doc/pwatch/operations.md* (metrics, health endpoint, the unit) and *behaviour.md*."},
	)
	return cliapp.Run(ctx, app, args)
}

func runFlags() []cli.Flag {
	env := func(name string) []string { return []string{"PWATCH_" + name} }
	return []cli.Flag{
		&cli.StringFlag{Name: "watcher", Value: "auto", EnvVars: env("WATCHER"), Usage: "death-detection backend: " + watcherChoices()},
		&cli.DurationFlag{Name: "poll-interval", Value: time.Second, EnvVars: env("POLL_INTERVAL"), Usage: "the proc backend's period"},
		&cli.StringFlag{Name: "control-socket", Value: control.DefaultSocket, EnvVars: env("CONTROL_SOCKET"), Usage: "where padmin reaches pcheck"},
		&cli.StringFlag{Name: "state-dir", Value: "/var/lib/pwatch", EnvVars: env("STATE_DIR"), Usage: "where state that outlives pcheck is kept"},
		&cli.StringFlag{Name: "syslog-socket", Value: "/dev/log", EnvVars: env("SYSLOG_SOCKET"), Usage: "local syslog socket (missing: warn once, go on)"},
		&cli.StringFlag{Name: "syslog-facility", Value: "daemon", EnvVars: env("SYSLOG_FACILITY"), Usage: "syslog facility"},
		&cli.StringFlag{Name: "reboot-command", EnvVars: env("REBOOT_COMMAND"), Usage: "how to reboot the node (default: systemctl reboot under systemd, else /sbin/reboot); split like a shell, run without one"},
		&cli.IntFlag{Name: "reboot-threshold", Value: 3, EnvVars: env("REBOOT_THRESHOLD"), Usage: "at most this many automatic reboots within --reboot-window (0: never reboot)"},
		&cli.Int64Flag{Name: "reboot-window", Value: 86400, EnvVars: env("REBOOT_WINDOW"), Usage: "the reboot guard's window, in seconds"},
		&cli.StringFlag{Name: "metrics-listen", EnvVars: env("METRICS_LISTEN"), Usage: "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; off unless given)"},
		&cli.StringFlag{Name: "health-listen", EnvVars: env("HEALTH_LISTEN"), Usage: "serve /healthz and /healthz/NAME at ADDR: 200 when Up, 503 otherwise (off unless given)"},
		&cli.StringFlag{Name: "web-listen", EnvVars: env("WEB_LISTEN"), Usage: "serve the read-only status page at http://ADDR/ (e.g. 127.0.0.1:9465; off unless given)"},
		// Notifications (pkg/notify, docs/operations.md).
		&cli.StringFlag{Name: "notify-command", EnvVars: env("NOTIFY_COMMAND"), Usage: "run CMD for each event of --notify-events, the event in PWATCH_* variables and as JSON on stdin; split like a shell, run without one (off unless given)"},
		&cli.StringFlag{Name: "notify-events", Value: notify.DefaultEvents, EnvVars: env("NOTIFY_EVENTS"), Usage: "the events --notify-command is run for, by the catalogue's event names: " + strings.Join(notify.KnownEvents, ", ")},
		&cli.IntFlag{Name: "notify-burst", Value: notify.DefaultBurst, EnvVars: env("NOTIFY_BURST"), Usage: "at most this many notifications per service within --notify-per; past it, one summary when the window ends"},
		&cli.DurationFlag{Name: "notify-per", Value: notify.DefaultPer, EnvVars: env("NOTIFY_PER"), Usage: "the window of --notify-burst"},
		&cli.IntFlag{Name: "http-max-conns", Value: metrics.DefaultMaxConns, EnvVars: env("HTTP_MAX_CONNS"), Usage: "connections each of --metrics-listen, --health-listen and --web-listen holds at most; more wait in the kernel's queue (a low RLIMIT_NOFILE lowers it)"},
		// No PWATCH_ variable: turning the rule off must be on the command line.
		&cli.BoolFlag{Name: "unsafe-skip-trust-check", Usage: "for tests only: load pfiles and scripts that others than root could have written, with a warning at every load (see docs/behaviour.md, Trust)"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: env("LOG_FORMAT"), Usage: "stderr lines: text or json"},
	}
}

func runDaemon(c *cli.Context, stderr io.Writer) error {
	facility, err := msg.ParseFacility(c.String("syslog-facility"))
	if err != nil {
		return cliapp.UsageError("--syslog-facility: %v", err)
	}
	format := c.String("log-format")
	if format != "text" && format != "json" {
		return cliapp.UsageError("--log-format %q: want text or json", format)
	}
	if w := c.String("watcher"); w != "auto" && !slices.Contains(exitwatch.Backends(), w) {
		return cliapp.UsageError("--watcher %q: want %s", w, watcherChoices())
	}
	if _, err := notify.ParseEvents(c.String("notify-events")); err != nil {
		return cliapp.UsageError("--notify-events %v", err)
	}
	if n := c.Int("notify-burst"); n < 1 {
		return cliapp.UsageError("--notify-burst %d: want at least 1", n)
	}
	if d := c.Duration("notify-per"); d < time.Second {
		return cliapp.UsageError("--notify-per %s: want at least 1s", d)
	}
	log, err := msg.NewLogger(msg.Config{
		Ident: "pcheck", Facility: facility, SyslogSocket: c.String("syslog-socket"),
		Stderr: stderr, Format: format,
	})
	if err != nil {
		return err
	}
	defer log.Close()
	return daemon.Run(c.Context, daemon.Config{
		Paths:           c.Args().Slice(),
		Watcher:         c.String("watcher"),
		PollInterval:    c.Duration("poll-interval"),
		ControlSocket:   c.String("control-socket"),
		StateDir:        c.String("state-dir"),
		RebootCommand:   c.String("reboot-command"),
		RebootThreshold: c.Int("reboot-threshold"),
		RebootWindow:    time.Duration(c.Int64("reboot-window")) * time.Second,
		MetricsListen:   c.String("metrics-listen"),
		HealthListen:    c.String("health-listen"),
		WebListen:       c.String("web-listen"),
		NotifyCommand:   c.String("notify-command"),
		NotifyEvents:    c.String("notify-events"),
		NotifyBurst:     c.Int("notify-burst"),
		NotifyPer:       c.Duration("notify-per"),
		HTTPMaxConns:    c.Int("http-max-conns"),
		SkipTrustCheck:  c.Bool("unsafe-skip-trust-check"),
	}, log)
}

// watcherChoices lists --watcher's values: "auto, ebpf, netlink, pidfd or
// proc" (the backends of this build, best first).
func watcherChoices() string {
	names := append([]string{"auto"}, exitwatch.Backends()...)
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// exitStatus prints err and returns pcheck's exit status: a retry over with
// action exit ends it with 3, bad usage with 2, any other error with 1.
func exitStatus(err error, stderr io.Writer) int {
	var st *daemon.ExitStatus
	if errors.As(err, &st) {
		fmt.Fprintf(stderr, "pcheck: %s\n", st.Reason)
		return st.Code
	}
	return cliapp.ExitStatus("pcheck", err, stderr)
}
