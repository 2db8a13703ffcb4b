// SPDX-License-Identifier: Apache-2.0

package cliapp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	var out bytes.Buffer
	app := &cli.App{
		Name: "tool", Usage: "do a thing", Description: "Tool does *one* thing.",
		Flags: []cli.Flag{&cli.StringFlag{Name: "socket", Value: "/run/x.sock", EnvVars: []string{"X_SOCKET"}, Usage: "where to talk"}},
		Commands: []*cli.Command{
			{Name: "go", Usage: "go somewhere", ArgsUsage: "PLACE|DIR...", Description: "Goes to PLACE.",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "fast", Usage: "hurry", DisableDefaultText: true}}},
			{Name: "secret", Usage: "not shown", Hidden: true},
		},
		Writer: &out, ErrWriter: &out,
	}
	Setup(app)
	SetManSections(app, ManSection{Title: "EXIT STATUS", Body: "0 or 2."})
	return app
}

func TestManPageFromDefinitions(t *testing.T) {
	page := string(md2man.Render([]byte(ManPage(testApp())))) // as scripts/build-deb.sh renders it
	for _, want := range []string{
		`.TH TOOL 8 "" "pwatch `,
		"tool \\- do a thing",
		".SH DESCRIPTION\nTool does *one* thing.", // markdown in help text is kept literal
		"\\fB--socket\\fP=\\fIvalue\\fP\nwhere to talk (default: /run/x.sock; environment: X_SOCKET).",
		".SS go PLACE|DIR...\nGo somewhere.",
		"Goes to PLACE.",
		"\\fB--fast\\fP\nhurry.",
		".SH EXIT STATUS\n0 or 2.",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
	for _, not := range []string{"secret", ".TP\n\\fB--help", "--generate-bash-completion", ".SS man"} {
		if strings.Contains(page, not) {
			t.Errorf("man page shows %q:\n%s", not, page)
		}
	}
}

// The hidden man command prints the page on the app's Writer.
func TestManCommand(t *testing.T) {
	app := testApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := Run(t.Context(), app, []string{"tool", "man"}); err != nil {
		t.Fatal(err)
	}
	if out.String() != ManPage(app) {
		t.Errorf("tool man printed:\n%s", out.String())
	}
}
