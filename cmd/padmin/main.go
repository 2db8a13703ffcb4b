// SPDX-License-Identifier: Apache-2.0

// Command padmin is the operator's tool for pwatch: it checks pfiles and
// talks to the running pcheck daemon.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/cliapp"
	"github.com/pwatch/pwatch/pkg/control"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// run runs padmin with the command line args (args[0] is the program
// name), writing to stdout and stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &cli.App{
		Name:  "padmin",
		Usage: "check pfiles and control the pcheck daemon",
		Description: "padmin is the operator's tool for pwatch. check validates pfiles without a daemon; " +
			"the other commands talk to the running pcheck over its control socket (root only). " +
			"stop, start and reload log a \"Command execute.\" line to syslog (ident padmin) and " +
			"print one line when pcheck has done it.",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "control-socket",
				Usage:   "pcheck's control socket",
				Value:   control.DefaultSocket,
				EnvVars: []string{"PWATCH_CONTROL_SOCKET"},
			},
			&cli.StringFlag{
				Name:    "syslog-socket",
				Usage:   "local syslog socket for padmin's own log lines",
				Value:   "/dev/log",
				EnvVars: []string{"PWATCH_SYSLOG_SOCKET"},
			},
			&cli.StringFlag{
				Name:    "syslog-facility",
				Usage:   "syslog facility of padmin's log lines",
				Value:   "daemon",
				EnvVars: []string{"PWATCH_SYSLOG_FACILITY"},
			},
		},
		Commands:  append([]*cli.Command{checkCommand()}, daemonCommands()...),
		Writer:    stdout,
		ErrWriter: stderr,
	}
	cliapp.Setup(app)
	cliapp.SetManSections(app,
		cliapp.ManSection{Title: "EXIT STATUS", Body: "0 on success; 1 when a pfile has errors, " +
			"pcheck cannot be reached or refuses the command; 2 on bad usage."},
		cliapp.ManSection{Title: "FILES", Body: "*/run/pwatch/pcheck.sock*\n: pcheck's control socket.\n\n" +
			"*/etc/pwatch/pfile.d/*\n: the pfiles pwatch.service watches.\n\n" +
			"*/usr/share/pwatch/pfile/*, */usr/share/pwatch/restart/*\n: sample pfiles and restart scripts to copy from."},
		cliapp.ManSection{Title: "SEE ALSO", Body: "**pcheck**(8), **pfile**(5); */usr/share/doc/pwatch/behaviour.md*."},
	)
	return cliapp.Run(ctx, app, args)
}

// exitStatus prints err (unless it was already reported) and returns the
// process's exit status.
func exitStatus(err error, stderr io.Writer) int {
	return cliapp.ExitStatus("padmin", err, stderr)
}
