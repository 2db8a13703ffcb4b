// SPDX-License-Identifier: Apache-2.0

// Package rootexec prepares the programs pcheck runs as root (restart and
// retry-over scripts, the reboot command): each is checked against the
// trust rule just before it runs, through the very file that is then
// exec'd (pkg/trust.Open), and runs in a fixed environment, the same
// whether pcheck runs under systemd, by hand or from the OCF agent:
//
//   - PATH=/usr/sbin:/usr/bin:/sbin:/bin (trust.SafePath);
//   - umask 022;
//   - the working directory /;
//   - no variable of pcheck's own environment but the PWATCH_* ones, then
//     those the caller adds (PWATCH_SERVICE...). pfiles have no way to
//     name others.
package rootexec

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/trust"
)

// Umask is the programs' umask.
const Umask = 0o022

// minExecFD keeps the descriptor exec'd above every descriptor the Go
// runtime's fork moves or dups in the child (0-2, and a few above them
// when pcheck's own 0-2 were closed), so none can land on it.
const minExecFD = 64

// Cmd is a checked program ready to start. Close it once started (or
// not).
type Cmd struct {
	*exec.Cmd
	opened *trust.Opened
	fd     *os.File
}

// Command checks argv (trust.Open) and returns it ready to start with the
// fixed environment plus env. A refusal is a *trust.Refusal.
//
// It is exec'd as /proc/self/fd/N, N a close-on-exec copy of the checked
// file's descriptor: the kernel opens that file, not a path someone could
// have changed, and the descriptor does not outlive the exec. A script's
// $0 is still its path: the chain's end is its interpreter, given the
// script's path as the kernel would have.
func Command(argv []string, env []string) (*Cmd, error) {
	o, err := trust.Open(argv)
	if err != nil {
		return nil, err
	}
	return command(o, argv, env)
}

// CommandUnsafe is Command for --unsafe-skip-trust-check (tests only): a
// program the trust rule refuses is run anyway, once warn has heard why.
func CommandUnsafe(argv []string, env []string, warn func(*trust.Refusal)) (*Cmd, error) {
	o, refusal, err := trust.OpenAnyway(argv)
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		warn(refusal)
	}
	return command(o, argv, env)
}

func command(o *trust.Opened, argv []string, env []string) (*Cmd, error) {
	setUmask()
	fd, err := unix.FcntlInt(o.File.Fd(), unix.F_DUPFD_CLOEXEC, minExecFD)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("%s: %w", argv[0], err)
	}
	f := os.NewFile(uintptr(fd), o.File.Name())
	cmd := &exec.Cmd{
		Path: fmt.Sprintf("/proc/self/fd/%d", fd),
		Args: o.Argv,
		Env:  Env(env),
		Dir:  "/",
	}
	return &Cmd{Cmd: cmd, opened: o, fd: f}, nil
}

// Close releases the checked file.
func (c *Cmd) Close() {
	c.fd.Close()
	c.opened.Close()
}

// Env is the fixed environment plus extra: PATH, then pcheck's PWATCH_*
// variables, then extra (a later one wins).
func Env(extra []string) []string {
	env := []string{"PATH=" + trust.SafePath}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PWATCH_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// setUmask sets pcheck's umask, which its children inherit, to Umask,
// before each program: the umask is the process's, there is no setting it
// for a child alone. pcheck creates its own files with explicit modes
// that 022 leaves whole.
func setUmask() { syscall.Umask(Umask) }
