// Command padmin is the operator's tool for pwatch: it checks pfiles and
// talks to the running pcheck daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

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
		// run returns every error to main, which alone ends the process.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
	}
	return app.RunContext(ctx, args)
}

// exitStatus prints err (unless it was already reported) and returns the
// process's exit status: the code of a cli.ExitCoder, else 1.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	code := 1
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "padmin: %s\n", msg)
	}
	return code
}
