// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// Bad usage is one plain line on stderr and exit status 2, never a page
// of help.
func TestUsageErrorsExitTwo(t *testing.T) {
	for args, want := range map[string]string{
		"--bogus":                       "padmin: unknown flag --bogus (see 'padmin --help')\n",
		"--version extra-arg-is-fine":   "",
		"nosuch":                        "padmin: unknown command \"nosuch\" (see 'padmin --help')\n",
		"status --bogus":                "padmin: unknown flag --bogus (see 'padmin status --help')\n",
		"--control-socket":              "padmin: --control-socket needs a value (see 'padmin --help')\n",
		"stop":                          "padmin: stop: name one service\n",
		"start a b":                     "padmin: start: name one service\n",
		"reload a b":                    "padmin: reload: name one service, or none for all\n",
		"check":                         "padmin: check: expected at least one PFILE or DIR\n",
		"--syslog-facility nope stop x": "padmin: --syslog-facility: unknown syslog facility",
	} {
		t.Run(args, func(t *testing.T) {
			out, errOut, status := padmin(t, strings.Fields(args)...)
			if want == "" { // --version with an argument still prints the version
				if status != 0 || !strings.HasPrefix(out, "padmin version ") {
					t.Fatalf("status %d, stdout %q, stderr %q", status, out, errOut)
				}
				return
			}
			if status != 2 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("status %d, stdout %q, stderr %q; want 2, nothing, %q", status, out, errOut, want)
			}
		})
	}
}

// Help and the version go to stdout and exit 0.
func TestHelpAndVersionOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"rules", "--help"}, {}, {"--version"}} {
		out, errOut, status := padmin(t, args...)
		if status != 0 || errOut != "" || out == "" {
			t.Errorf("padmin %v: status %d, stdout %q, stderr %q", args, status, out, errOut)
		}
	}
	out, _, _ := padmin(t, "rules", "--help")
	if strings.Contains(out, "(default: false)") || !strings.Contains(out, "rules always prints JSON") {
		t.Errorf("rules --help:\n%s", out)
	}
}

// fakePcheck answers padmin's commands as a pcheck watching "web" would,
// and records them.
type fakePcheck struct {
	mu   sync.Mutex
	done []string
}

func (f *fakePcheck) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = append(f.done, s)
}

func (f *fakePcheck) Status(context.Context, string) ([]control.ServiceStatus, error) {
	return []control.ServiceStatus{{Name: "web", State: "Up"}, {Name: "db", State: "Paused"}}, nil
}
func (f *fakePcheck) Rules(context.Context, string) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}
func (f *fakePcheck) Stop(_ context.Context, name string) error { f.record("stop " + name); return nil }
func (f *fakePcheck) Start(_ context.Context, name string) error {
	f.record("start " + name)
	return nil
}
func (f *fakePcheck) Reload(_ context.Context, name string) []error {
	if name == "bad" {
		return []error{errors.New("bad.pfile:3: unknown key \"x\"")}
	}
	f.record("reload " + name)
	return nil
}
func (f *fakePcheck) RebootCount(context.Context, bool) (control.RebootCount, error) {
	return control.RebootCount{}, nil
}

// listenFake serves a fakePcheck on a socket in a temporary directory.
func listenFake(t *testing.T) (*fakePcheck, string) {
	t.Helper()
	testpriv.Root(t) // the control socket takes root peers only
	f := &fakePcheck{}
	sock := filepath.Join(t.TempDir(), "pcheck.sock")
	srv, err := control.Listen(sock, f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return f, sock
}

// stop, start and reload say in one line that pcheck did it, and nothing
// about a syslog that is not there.
func TestOneShotCommandsSayOneLine(t *testing.T) {
	f, sock := listenFake(t)
	noSyslog := filepath.Join(t.TempDir(), "no-such-log")
	for _, c := range []struct{ args, want string }{
		{"stop web", "stopped watching web (its processes are left running)\n"},
		{"start web", "watching web again\n"},
		{"reload web", "reloaded web\n"},
		{"reload", "reloaded every pfile\n"},
	} {
		args := append([]string{"--control-socket", sock, "--syslog-socket", noSyslog}, strings.Fields(c.args)...)
		out, errOut, status := padmin(t, args...)
		if status != 0 || out != c.want || errOut != "" {
			t.Errorf("padmin %s: status %d, stdout %q, stderr %q; want 0, %q, nothing", c.args, status, out, errOut, c.want)
		}
	}
	want := []string{"stop web", "start web", "reload web", "reload "}
	if strings.Join(f.done, ",") != strings.Join(want, ",") {
		t.Errorf("pcheck was asked %q, want %q", f.done, want)
	}
	// A refused reload prints pcheck's errors, not the success line.
	out, errOut, status := padmin(t, "--control-socket", sock, "--syslog-socket", noSyslog, "reload", "bad")
	if status != 1 || out != "" || !strings.Contains(errOut, `bad.pfile:3: unknown key "x"`) {
		t.Errorf("refused reload: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

// Completion offers the names of the services the running pcheck watches.
func TestCompletionOffersServiceNames(t *testing.T) {
	_, sock := listenFake(t)
	for _, cmd := range []string{"stop", "start", "reload", "status", "rules"} {
		out, errOut, status := padmin(t, "--control-socket", sock, cmd, "--generate-bash-completion")
		if status != 0 || out != "web\ndb\n" {
			t.Errorf("padmin %s <TAB>: status %d, stdout %q, stderr %q; want web and db", cmd, status, out, errOut)
		}
	}
	// stop takes one name: none is offered after it.
	if out, _, _ := padmin(t, "--control-socket", sock, "stop", "web", "--generate-bash-completion"); out != "" {
		t.Errorf("padmin stop web <TAB> offered %q", out)
	}
	// No pcheck: nothing offered, nothing printed.
	out, errOut, status := padmin(t, "--control-socket", filepath.Join(t.TempDir(), "none.sock"), "stop", "--generate-bash-completion")
	if status != 0 || out != "" || errOut != "" {
		t.Errorf("without pcheck: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}
