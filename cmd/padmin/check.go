package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/cliapp"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/trust"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate pfiles without a daemon",
		ArgsUsage: "PFILE|DIR...",
		Description: "Reads each pfile (a directory stands for its *.pfile files) and prints\n" +
			"\"OK NAME\" for a valid one or each error as FILE:LINE: MESSAGE on stderr.\n" +
			"Warnings go to stderr too and do not fail the check. The exit status is\n" +
			"1 when any file has an error, else 0. With --json, each valid service's\n" +
			"effective rules are printed instead of OK lines, one JSON object per line.\n" +
			"A pfile, or a script it names, that others than root could have written\n" +
			"fails the check as it fails pcheck's load (docs/behaviour.md, Trust).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print each service's effective rules as one JSON object per line", DisableDefaultText: true},
			&cli.BoolFlag{Name: "unsafe-skip-trust-check", Usage: "for tests only: report the trust rule's refusals as warnings", DisableDefaultText: true},
		},
		Action: runCheck,
	}
}

func runCheck(c *cli.Context) error {
	if c.NArg() == 0 {
		return cliapp.UsageError("check: expected at least one PFILE or DIR")
	}
	out, errOut := c.App.Writer, c.App.ErrWriter
	failed := false
	report := func(err error) {
		failed = true
		for _, e := range pfile.AsErrors(err) {
			fmt.Fprintln(errOut, e.Error())
		}
	}
	// The trust rule: each problem printed once, and failing every file
	// it concerns.
	tc := trust.New()
	skipTrust := c.Bool("unsafe-skip-trust-check")
	if skipTrust {
		fmt.Fprintln(errOut, "warning: the trust rule is off (--unsafe-skip-trust-check, meant for tests only): its refusals are only warnings")
	}
	printed := map[string]bool{}
	trusted := func() bool {
		problems := tc.Take()
		for _, p := range problems {
			if !printed[p.Error()] {
				printed[p.Error()] = true
				if skipTrust {
					fmt.Fprintln(errOut, "warning: trust rule off, accepted anyway: "+p.Error())
				} else {
					fmt.Fprintln(errOut, p.Error())
				}
			}
		}
		if len(problems) > 0 && !skipTrust {
			failed = true
			return false
		}
		return true
	}
	for _, a := range c.Args().Slice() {
		tc.Rules(a)
	}
	trusted()
	files, err := pfile.Files(c.Args().Slice()...)
	if err != nil {
		report(err)
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	names := map[string]string{}
	for _, f := range files {
		tc.Rules(f)
		svc, warns, err := pfile.LoadFile(f)
		for _, w := range warns {
			fmt.Fprintln(errOut, w.String())
		}
		if err != nil {
			trusted()
			report(err)
			continue
		}
		if w := ownerWarning(svc); w != "" {
			fmt.Fprintln(errOut, w)
		}
		tc.Service(svc)
		ok := trusted()
		if prev, dup := names[svc.Name]; dup {
			report(&pfile.Error{File: f, Msg: fmt.Sprintf("service name %q is already used by %s", svc.Name, prev)})
			continue
		}
		names[svc.Name] = f
		if !ok {
			continue
		}
		if c.Bool("json") {
			if err := enc.Encode(svc); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(out, "OK %s\n", svc.Name)
	}
	if failed {
		return cli.Exit("", 1)
	}
	return nil
}
