// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/cliapp"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "show pcheck's event history (the last 1,000 events, kept across restarts), oldest first",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "service", Usage: "only the events of service `NAME`"},
			&cli.DurationFlag{Name: "since", Usage: "only the events of the last `DURATION` (90s, 10m, 2h)", DefaultText: "all kept"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object a line", DisableDefaultText: true},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "then print each new event as it happens, until interrupted", DisableDefaultText: true},
		},
		// No arguments to complete, only flags.
		BashComplete: func(c *cli.Context) { cli.DefaultCompleteWithFlags(c.Command)(c) },
		Action:       showEvents,
	}
}

func showEvents(c *cli.Context) error {
	if c.NArg() > 0 {
		return cliapp.UsageError("events: no arguments (--service NAME for one service's)")
	}
	q := control.EventQuery{Service: c.String("service")}
	if c.IsSet("since") {
		d := c.Duration("since")
		if d <= 0 {
			return cliapp.UsageError("--since: %v is not a positive duration", d)
		}
		q.Since = time.Now().Add(-d)
	}
	show := eventPrinter(c)
	if !c.Bool("follow") {
		evs, err := client(c).Events(c.Context, q)
		if err != nil {
			return err
		}
		return show(evs)
	}
	var told uint64
	return client(c).Follow(c.Context, q, func(evs []events.Event, dropped uint64) error {
		if dropped > told {
			fmt.Fprintf(c.App.ErrWriter, "padmin: pcheck dropped %d events for this reader, which fell behind (%d so far)\n", dropped-told, dropped)
			told = dropped
		}
		return show(evs)
	})
}

// eventPrinter prints events as lines, or as JSON lines with --json (a
// stream of objects, so that --follow can go on for ever).
func eventPrinter(c *cli.Context) func([]events.Event) error {
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		return func(evs []events.Event) error {
			for _, e := range evs {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return func(evs []events.Event) error {
		for _, e := range evs {
			if err := control.FormatEvent(c.App.Writer, e); err != nil {
				return err
			}
		}
		return nil
	}
}

func restartCommand() *cli.Command {
	return &cli.Command{
		Name: "restart", ArgsUsage: "NAME",
		Usage: "restart an Up service through its recovery (its processes killed, its restart script, Up), " +
			"with reason operator; not counted as a failed attempt",
		BashComplete: completeServices,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cliapp.UsageError("restart: name one service")
			}
			name := c.Args().First()
			// pcheck logs the Command execute. line when the supervisor
			// takes the restart on: it alone knows when that is.
			if err := client(c).Restart(c.Context, name); err != nil {
				return err
			}
			return say(c, "restarting %s (padmin events --follow --service %s shows it come back)", name, name)
		},
	}
}
