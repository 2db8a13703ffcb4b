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
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/version"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/daemon"
	"github.com/pwatch/pwatch/pkg/msg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	app := &cli.App{
		Name:    "pcheck",
		Usage:   "watch services and bring them back when they die or stall",
		Version: version.Version,
		Commands: []*cli.Command{{
			Name:      "run",
			Usage:     "watch the services of these pfiles (files, or directories of *.pfile)",
			ArgsUsage: "PFILE|DIR...",
			Flags:     runFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("pcheck run: name at least one pfile or directory", 2)
				}
				return runDaemon(c, stderr)
			},
		}},
		Writer:          stderr,
		ErrWriter:       stderr,
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
	}
	return app.RunContext(ctx, args)
}

func runFlags() []cli.Flag {
	env := func(name string) []string { return []string{"PWATCH_" + name} }
	return []cli.Flag{
		&cli.StringFlag{Name: "watcher", Value: "auto", EnvVars: env("WATCHER"), Usage: "death-detection backend: auto, ebpf, netlink, pidfd or proc"},
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
		// No PWATCH_ variable: turning the rule off must be on the command line.
		&cli.BoolFlag{Name: "unsafe-skip-trust-check", Usage: "for tests only: load pfiles and scripts that others than root could have written, with a warning at every load (see docs/behaviour.md, Trust)"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: env("LOG_FORMAT"), Usage: "stderr lines: text or json"},
	}
}

func runDaemon(c *cli.Context, stderr io.Writer) error {
	facility, err := msg.ParseFacility(c.String("syslog-facility"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	format := c.String("log-format")
	if format != "text" && format != "json" {
		return cli.Exit(fmt.Sprintf("--log-format %q: want text or json", format), 2)
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
		SkipTrustCheck:  c.Bool("unsafe-skip-trust-check"),
	}, log)
}

// exitStatus prints err and returns pcheck's exit status: a retry over with
// action exit ends it with 3, bad usage with 2, any other error with 1.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var st *daemon.ExitStatus
	if errors.As(err, &st) {
		fmt.Fprintf(stderr, "pcheck: %s\n", st.Reason)
		return st.Code
	}
	code := 1
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	fmt.Fprintf(stderr, "pcheck: %s\n", err)
	return code
}
