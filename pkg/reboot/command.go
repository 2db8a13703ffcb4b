// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/pwatch/pwatch/internal/capbuf"
	"github.com/pwatch/pwatch/internal/pgroup"
	"github.com/pwatch/pwatch/pkg/rootexec"
	"github.com/pwatch/pwatch/pkg/trust"
)

// DefaultTimeout bounds a reboot command that does not return. systemctl
// reboot and /sbin/reboot return as soon as the init system has the request.
const DefaultTimeout = time.Minute

// maxOutput bounds the command output kept for the log.
const maxOutput = 64 << 10

// Command is the program that reboots the node, run without a shell.
type Command struct {
	Argv []string
	// Timeout bounds the run; 0 is DefaultTimeout.
	Timeout time.Duration
	// UnsafeSkipTrust runs it even when the trust rule refuses it just
	// before (--unsafe-skip-trust-check: tests only; the load warned).
	UnsafeSkipTrust bool
}

// ParseCommand turns --reboot-command into a Command: the line is split
// into words as a shell would split them (quotes and backslashes; see
// splitCommandLine) but run without a shell. An empty line is
// DefaultCommand.
func ParseCommand(line string) (Command, error) {
	argv, err := splitCommandLine(line)
	if err != nil {
		return Command{}, fmt.Errorf("reboot command %q: %w", line, err)
	}
	if len(argv) == 0 {
		return DefaultCommand(), nil
	}
	return Command{Argv: argv}, nil
}

// DefaultCommand is `systemctl reboot` on a host booted with systemd, else
// /sbin/reboot.
func DefaultCommand() Command {
	return Command{Argv: defaultArgv(exec.LookPath, isDir)}
}

// defaultArgv decides the default command from what the host has. systemd
// creates /run/systemd/system at boot (sd_booted(3)); systemctl installed
// on a host booted without systemd cannot reboot it.
func defaultArgv(lookPath func(string) (string, error), isDir func(string) bool) []string {
	if path, err := lookPath("systemctl"); err == nil && isDir("/run/systemd/system") {
		return []string{path, "reboot"}
	}
	return []string{"/sbin/reboot"}
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// String is the command line, for logs.
func (c Command) String() string { return strings.Join(c.Argv, " ") }

// Run runs the command in a process group of its own, once the trust rule
// has passed it again, and returns its
// output (stdout and stderr, at most 64 KiB). A command still running after
// the timeout is killed with its group.
func (c Command) Run(ctx context.Context) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("no reboot command")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := &capbuf.Buffer{Max: maxOutput}
	// Checked by the trust rule again, through the file run, and run in
	// the fixed environment (pkg/rootexec); a refusal is a *trust.Refusal.
	prepare := rootexec.Command
	if c.UnsafeSkipTrust {
		prepare = func(argv, env []string) (*rootexec.Cmd, error) {
			return rootexec.CommandUnsafe(argv, env, func(*trust.Refusal) {})
		}
	}
	cmd, err := prepare(c.Argv, nil)
	if err != nil {
		return nil, fmt.Errorf("reboot command %s: %w", c, err)
	}
	defer cmd.Close()
	cmd.Stdout, cmd.Stderr = out, out
	group := pgroup.New(cmd.Cmd)
	defer group.Close()
	// Something the command started may keep the output pipe open; do not
	// wait for it past the command's own exit.
	cmd.WaitDelay = time.Second
	err = cmd.Start()
	if err == nil {
		// The group is killed, when the timeout comes first, before the
		// command is reaped: never a group that reused its number.
		err = group.Wait(ctx)
	}
	output := out.Bytes()
	switch {
	case ctx.Err() != nil && err != nil:
		return output, fmt.Errorf("reboot command %s did not finish within %s: %w", c, timeout, ctx.Err())
	case err != nil:
		return output, fmt.Errorf("reboot command %s: %w%s", c, err, outputSuffix(output))
	}
	return output, nil
}

func outputSuffix(out []byte) string {
	if s := strings.TrimSpace(string(out)); s != "" {
		return ": " + s
	}
	return ""
}
