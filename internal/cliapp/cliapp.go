// SPDX-License-Identifier: Apache-2.0

// Package cliapp gives pcheck and padmin the same command-line manners:
// help and --version on stdout, a usage error as one plain line on stderr
// with exit status 2 (never a page of help), shell completion, and their
// man pages generated from the same definitions.
package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/version"
)

// UsageStatus is the exit status of bad usage.
const UsageStatus = 2

// UsageError is a usage error: exit status 2.
func UsageError(format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), UsageStatus)
}

// Setup gives app (its commands already in place) those manners. app's
// Writer and ErrWriter must be set: help and version go to the Writer.
func Setup(app *cli.App) {
	app.Version = version.Version
	app.EnableBashCompletion = true
	app.HideHelpCommand = true
	// run returns every error to main, which alone prints it and exits.
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = onUsageError
	if app.Action == nil {
		app.Action = rootAction
	}
	app.Commands = append(app.Commands, manCommand())
	setCommands(app.Commands)
}

func setCommands(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		c.HideHelpCommand = true // --help is enough; "help" is no completion
		setCommands(c.Subcommands)
	}
}

// onUsageError turns a flag that does not parse into one line, exit 2.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	// Go's flag package says "-x" for a flag typed "--x".
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag " + dashes(name)
	} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		msg = dashes(name) + " needs a value"
	} else if m := invalidValue.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("invalid value %s for %s: %s", m[1], dashes(m[2]), m[3])
	}
	return UsageError("%s (see '%s --help')", msg, helpName(c))
}

var invalidValue = regexp.MustCompile(`^invalid value (".*") for flag -(\S+): (.*)$`)

// dashes writes a flag's name as it is typed: -h, --json.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func helpName(c *cli.Context) string {
	if c.Command != nil && c.Command.HelpName != "" {
		return c.Command.HelpName
	}
	return c.App.Name
}

// rootAction runs when no command matched: help for none, a usage error
// for a word that is not a command.
func rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return UsageError("unknown command %q (see '%s --help')", c.Args().First(), c.App.Name)
	}
	return cli.ShowAppHelp(c)
}

// ExitStatus prints err as "PROG: message" (unless it is empty: already
// reported) and returns the exit status: a cli.ExitCoder's code, else 1.
func ExitStatus(prog string, err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	code := 1
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "%s: %s\n", prog, msg)
	}
	return code
}

const argsKey = "args"

// Run runs app (set up by Setup) on the command line args.
func Run(ctx context.Context, app *cli.App, args []string) error {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[argsKey] = args
	return app.RunContext(ctx, args)
}

// CompletingFlag says whether shell completion is asked for a flag: while
// one is typed, the completion scripts (scripts/completion/) pass "-"
// before --generate-bash-completion.
func CompletingFlag(c *cli.Context) bool {
	args, _ := c.App.Metadata[argsKey].([]string)
	n := len(args)
	return n > 2 && args[n-1] == "--generate-bash-completion" && strings.HasPrefix(args[n-2], "-")
}
