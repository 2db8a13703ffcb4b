// SPDX-License-Identifier: Apache-2.0

package cliapp

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pwatch/pwatch/internal/version"
)

// ManSection is a man-page section the CLI definitions do not hold
// (EXIT STATUS, FILES, SEE ALSO ...); Body is markdown.
type ManSection struct {
	Title, Body string
}

// manSectionsKey keeps an app's extra man-page sections in its Metadata,
// so that the page is generated from the app alone.
const manSectionsKey = "man-sections"

// SetManSections gives app the extra sections of its man page.
func SetManSections(app *cli.App, sections ...ManSection) {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[manSectionsKey] = sections
}

// manCommand is the hidden `man` command. It prints the page's markdown,
// which go-md2man (pinned in go.mod) renders into the package's roff
// (scripts/build-deb.sh): the renderer stays out of the programs.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print this program's man page (section 8) as go-md2man's markdown",
		Hidden: true,
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprint(c.App.Writer, ManPage(c.App))
			return err
		},
	}
}

// ManPage writes app's section-8 man page, in go-md2man's markdown, from
// its definitions: its usage and description, every visible flag and
// command (with their arguments, descriptions, defaults and environment
// variables), then the extra sections. urfave/cli's own ToMan leaves out the commands'
// arguments and descriptions, which are most of padmin's page.
func ManPage(app *cli.App) string {
	var b strings.Builder
	name := app.Name
	fmt.Fprintf(&b, "%% %s 8 \"\" \"pwatch %s\" \"System Administration\"\n\n", strings.ToUpper(name), version.Version)
	fmt.Fprintf(&b, "# NAME\n\n%s - %s\n\n", name, esc(app.Usage))
	fmt.Fprintf(&b, "# SYNOPSIS\n\n**%s** [*global options*] *command* [*command options*] [*arguments*]\n\n", name)
	fmt.Fprintf(&b, "**%s** **--version** | **--help**\n\n", name)
	if app.Description != "" {
		fmt.Fprintf(&b, "# DESCRIPTION\n\n%s\n\n", esc(app.Description))
	}
	if flags := visible(app.VisibleFlags()); len(flags) > 0 {
		b.WriteString("# GLOBAL OPTIONS\n\n")
		writeFlags(&b, flags)
	}
	b.WriteString("# COMMANDS\n\n")
	for _, c := range app.VisibleCommands() {
		fmt.Fprintf(&b, "### %s", c.Name)
		if c.ArgsUsage != "" {
			fmt.Fprintf(&b, " %s", esc(c.ArgsUsage))
		}
		fmt.Fprintf(&b, "\n\n%s.\n\n", esc(upperFirst(c.Usage)))
		if c.Description != "" {
			fmt.Fprintf(&b, "%s\n\n", esc(c.Description))
		}
		writeFlags(&b, visible(c.VisibleFlags()))
	}
	sections, _ := app.Metadata[manSectionsKey].([]ManSection)
	for _, s := range sections {
		fmt.Fprintf(&b, "# %s\n\n%s\n\n", s.Title, strings.TrimSpace(s.Body))
	}
	return b.String()
}

// visible drops --help, which every command has and the synopsis names.
func visible(flags []cli.Flag) []cli.DocGenerationFlag {
	var out []cli.DocGenerationFlag
	for _, f := range flags {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok || f == cli.HelpFlag || f == cli.VersionFlag {
			continue
		}
		out = append(out, d)
	}
	return out
}

// writeFlags writes flags as a definition list: the names (and value),
// then the usage, the default and the environment variables.
func writeFlags(b *strings.Builder, flags []cli.DocGenerationFlag) {
	for _, f := range flags {
		var names []string
		for _, n := range f.Names() {
			if len(n) == 1 {
				names = append(names, "**-"+esc(n)+"**")
			} else {
				names = append(names, "**--"+esc(n)+"**")
			}
		}
		term := strings.Join(names, ", ")
		if f.TakesValue() {
			term += "=*value*"
		}
		def := f.GetDefaultText()
		if def == "" {
			def = f.GetValue()
		}
		var notes []string
		if f.TakesValue() && def != "" && def != `""` {
			notes = append(notes, "default: "+esc(strings.Trim(def, `"`)))
		}
		if env := f.GetEnvVars(); len(env) > 0 {
			notes = append(notes, "environment: "+esc(strings.Join(env, ", ")))
		}
		text := esc(strings.TrimSuffix(f.GetUsage(), "."))
		if len(notes) > 0 {
			text += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(b, "%s\n: %s.\n\n", term, text)
	}
}

// esc escapes what markdown would take for markup in help text.
func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>#|", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
