package main

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/msg"
)

// daemonCommands are the subcommands that talk to a running pcheck.
func daemonCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "status",
			Usage:     "show each service's state, pids, uptime, restarts within grace and last event",
			ArgsUsage: "[NAME]",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
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
		},
		{
			Name:      "rules",
			Usage:     "show the rules pcheck runs now, after defaults",
			ArgsUsage: "[NAME]",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON (the default)"}},
			Action: func(c *cli.Context) error {
				rules, err := client(c).Rules(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				return printJSON(c, rules)
			},
		},
		{
			Name:  "reboot-count",
			Usage: "show the reboot guard's count of automatic reboots within its window",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "reset", Usage: "clear the count first"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
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
		},
		{
			Name:      "reload",
			Usage:     "re-read the pfiles (or NAME's); any error refuses the whole reload and the running rules stay",
			ArgsUsage: "[NAME]",
			Action: func(c *cli.Context) error {
				if c.NArg() > 1 {
					return cli.Exit("padmin reload: name one service, or none for all", 2)
				}
				name := c.Args().First()
				if err := client(c).Reload(c.Context, name); err != nil {
					return err
				}
				return logCommand(c, msg.CommandReload, name)
			},
		},
		serviceCommand(msg.CommandStop, "stop watching NAME; its processes are left alone",
			func(c *cli.Context, name string) error { return client(c).Stop(c.Context, name) }),
		serviceCommand(msg.CommandStart, "watch NAME again, its counters reset",
			func(c *cli.Context, name string) error { return client(c).Start(c.Context, name) }),
	}
}

// serviceCommand is a command on one named service that logs its
// "Command execute." line as padmin once pcheck has accepted it: a refused
// command (no such service, pcheck unreachable) executed nothing.
func serviceCommand(name, usage string, do func(*cli.Context, string) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: "NAME",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit(fmt.Sprintf("padmin %s: name one service", name), 2)
			}
			svc := c.Args().First()
			if err := do(c, svc); err != nil {
				return err
			}
			return logCommand(c, name, svc)
		},
	}
}

func client(c *cli.Context) control.Client {
	return control.Client{Path: c.String("control-socket")}
}

// logCommand logs padmin's "Command execute." line to syslog (ident padmin).
func logCommand(c *cli.Context, command, name string) error {
	facility, err := msg.ParseFacility(c.String("syslog-facility"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	log, err := msg.NewLogger(msg.Config{
		Ident: "padmin", Facility: facility, SyslogSocket: c.String("syslog-socket"),
		Stderr: c.App.ErrWriter,
		// Only syslog gets the line (the operator typed the command);
		// stderr shows only trouble reaching syslog.
		Level: slog.LevelWarn,
	})
	if err != nil {
		return err
	}
	defer log.Close()
	log.Log(msg.CommandExecute(command, name))
	return nil
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
