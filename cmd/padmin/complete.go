// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/cliapp"
)

// completeServices is the shell completion of the commands that take
// service names: the names the running pcheck watches (none when it cannot
// be reached), or the command's flags when a flag is being typed.
func completeServices(c *cli.Context) {
	if cliapp.CompletingFlag(c) {
		cli.DefaultCompleteWithFlags(c.Command)(c)
		return
	}
	oneName := c.Command.ArgsUsage == "NAME" || c.Command.ArgsUsage == "[NAME]"
	if oneName && c.NArg() > 0 {
		return // the one name is given
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Second)
	defer cancel()
	services, err := client(c).Status(ctx, "")
	if err != nil {
		return
	}
	for _, s := range services {
		fmt.Fprintln(c.App.Writer, s.Name)
	}
}
