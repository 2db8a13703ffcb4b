// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/cliapp"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/msg"
)

// daemonCommands are the subcommands that talk to a running pcheck.
func daemonCommands() []*cli.Command {
	return []*cli.Command{
		statusCommand(),
		rulesCommand(),
		rebootCountCommand(),
		reloadCommand(),
		serviceCommand(msg.CommandStop, "stop watching NAME; its processes are left alone", stop),
		serviceCommand(msg.CommandStart, "watch NAME again, its counters reset", start),
		restartCommand(),
		eventsCommand(),
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show each service's state, pids, uptime, restarts within grace and last event",
		ArgsUsage:    "[NAME]",
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON", DisableDefaultText: true}},
		BashComplete: completeServices,
		Action: func(c *cli.Context) error {
			services, err := client(c).Status(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, services)
			}
			return control.FormatStatus(c.App.Writer, services)
		},
	}
}

func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:      "rules",
		Usage:     "show the rules pcheck runs now, after defaults",
		ArgsUsage: "[NAME]",
		// rules only prints JSON; --json is taken so that scripts
		// can pass it as they do to status.
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "accepted for symmetry with status (rules always prints JSON)", DisableDefaultText: true}},
		BashComplete: completeServices,
		Action: func(c *cli.Context) error {
			rules, err := client(c).Rules(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			return printJSON(c, rules)
		},
	}
}

func rebootCountCommand() *cli.Command {
	return &cli.Command{
		Name:  "reboot-count",
		Usage: "show the reboot guard's count of automatic reboots within its window",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "reset", Usage: "clear the count first", DisableDefaultText: true},
			&cli.BoolFlag{Name: "json", Usage: "print JSON", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			rc, err := client(c).RebootCount(c.Context, c.Bool("reset"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, rc)
			}
			_, err = fmt.Fprintf(c.App.Writer, "%d of %d automatic reboots within %ds\n", rc.Count, rc.Threshold, rc.WindowSeconds)
			return err
		},
	}
}

func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:         "reload",
		Usage:        "re-read the pfiles (or NAME's); any error refuses the whole reload and the running rules stay",
		ArgsUsage:    "[NAME]",
		BashComplete: completeServices,
		Action:       reload,
	}
}

func reload(c *cli.Context) error {
	if c.NArg() > 1 {
		return cliapp.UsageError("reload: name one service, or none for all")
	}
	name := c.Args().First()
	logged, err := commandLog(c, msg.CommandReload, name)
	if err != nil {
		return err
	}
	// A reload pcheck carried out is logged, the new rules
	// refused or not; one it never ran is not.
	err = client(c).Reload(c.Context, name)
	var refused *control.ReloadRefusedError
	if err != nil && !errors.As(err, &refused) {
		return err
	}
	if lerr := logged(); lerr != nil {
		return lerr
	}
	if err != nil {
		return err
	}
	if name == "" {
		return say(c, "reloaded every pfile")
	}
	return say(c, "reloaded %s", name)
}

func stop(c *cli.Context, name string) error {
	if err := client(c).Stop(c.Context, name); err != nil {
		return err
	}
	return say(c, "stopped watching %s (its processes are left running)", name)
}

func start(c *cli.Context, name string) error {
	if err := client(c).Start(c.Context, name); err != nil {
		return err
	}
	return say(c, "watching %s again", name)
}

// serviceCommand is a command on one named service that logs its
// "Command execute." line as padmin once pcheck has accepted it: a refused
// command (no such service, pcheck unreachable) executed nothing.
func serviceCommand(name, usage string, do func(*cli.Context, string) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "NAME",
		BashComplete: completeServices,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cliapp.UsageError("%s: name one service", name)
			}
			svc := c.Args().First()
			logged, err := commandLog(c, name, svc)
			if err != nil {
				return err
			}
			if err := do(c, svc); err != nil {
				return err
			}
			return logged()
		},
	}
}

func client(c *cli.Context) control.Client {
	return control.Client{Path: c.String("control-socket")}
}

// commandLog returns the function that logs padmin's "Command execute."
// line to syslog (ident padmin). It is made before the command is sent, so
// that a bad --syslog-facility is a usage error that sends nothing, and
// called once pcheck has accepted the command.
func commandLog(c *cli.Context, command, name string) (func() error, error) {
	facility, err := msg.ParseFacility(c.String("syslog-facility"))
	if err != nil {
		return nil, cliapp.UsageError("--syslog-facility: %v", err)
	}
	return func() error {
		log, err := msg.NewLogger(msg.Config{
			Ident: "padmin", Facility: facility, SyslogSocket: c.String("syslog-socket"),
			// Only syslog gets the line (the operator typed the command). A
			// host without syslog is no news to a one-shot command: padmin
			// prints nothing about it.
			Stderr: io.Discard,
		})
		if err != nil {
			return err
		}
		defer log.Close()
		log.Log(msg.CommandExecute(command, name))
		return nil
	}, nil
}

// say prints a command's one line of success.
func say(c *cli.Context, format string, a ...any) error {
	_, err := fmt.Fprintf(c.App.Writer, format+"\n", a...)
	return err
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
