// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"

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
	ck := newChecker(c)
	for _, a := range c.Args().Slice() {
		ck.trust.Rules(a)
	}
	ck.trusted()
	files, err := pfile.Files(c.Args().Slice()...)
	if err != nil {
		ck.report(err)
	}
	for _, f := range files {
		if err := ck.file(f); err != nil {
			return err
		}
	}
	if ck.failed {
		return cli.Exit("", 1)
	}
	return nil
}

// checker checks pfiles one after another, remembering what it printed.
type checker struct {
	out, errOut io.Writer
	json        *json.Encoder // nil without --json
	trust       *trust.Checker
	skipTrust   bool
	printed     map[string]bool   // trust problems printed already
	names       map[string]string // service name -> its file
	failed      bool
}

func newChecker(c *cli.Context) *checker {
	ck := &checker{
		out: c.App.Writer, errOut: c.App.ErrWriter,
		trust:     trust.New(),
		skipTrust: c.Bool("unsafe-skip-trust-check"),
		printed:   map[string]bool{},
		names:     map[string]string{},
	}
	if c.Bool("json") {
		ck.json = json.NewEncoder(ck.out)
		ck.json.SetEscapeHTML(false)
	}
	if ck.skipTrust {
		fmt.Fprintln(ck.errOut, "warning: the trust rule is off (--unsafe-skip-trust-check, meant for tests only): its refusals are only warnings")
	}
	return ck
}

// report prints the problems of err and fails the check.
func (ck *checker) report(err error) {
	ck.failed = true
	for _, e := range pfile.AsErrors(err) {
		fmt.Fprintln(ck.errOut, e.Error())
	}
}

// trusted prints the trust rule's new problems, each once, and reports
// whether there were none (or the rule is off); a problem fails every
// file it concerns.
func (ck *checker) trusted() bool {
	problems := ck.trust.Take()
	for _, p := range problems {
		if ck.printed[p.Error()] {
			continue
		}
		ck.printed[p.Error()] = true
		if ck.skipTrust {
			fmt.Fprintln(ck.errOut, "warning: trust rule off, accepted anyway: "+p.Error())
		} else {
			fmt.Fprintln(ck.errOut, p.Error())
		}
	}
	if len(problems) > 0 && !ck.skipTrust {
		ck.failed = true
		return false
	}
	return true
}

// file checks one pfile and prints its OK line or its rules.
func (ck *checker) file(f string) error {
	ck.trust.Rules(f)
	svc, warns, err := pfile.LoadFile(f)
	for _, w := range warns {
		fmt.Fprintln(ck.errOut, w.String())
	}
	if err != nil {
		ck.trusted()
		ck.report(err)
		return nil
	}
	if w := ownerWarning(svc); w != "" {
		fmt.Fprintln(ck.errOut, w)
	}
	ck.trust.Service(svc)
	ok := ck.trusted()
	if prev, dup := ck.names[svc.Name]; dup {
		ck.report(&pfile.Error{File: f, Msg: fmt.Sprintf("service name %q is already used by %s", svc.Name, prev)})
		return nil
	}
	ck.names[svc.Name] = f
	switch {
	case !ok:
		return nil
	case ck.json != nil:
		return ck.json.Encode(svc)
	}
	_, err = fmt.Fprintf(ck.out, "OK %s\n", svc.Name)
	return err
}
