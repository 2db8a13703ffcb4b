// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pwatch/pwatch/internal/pgroup"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/rootexec"
	"github.com/pwatch/pwatch/pkg/trust"
)

// maxScriptLine bounds one logged line of a script's output.
const maxScriptLine = 4096

// runScript runs argv directly (no shell: its own #! line decides) in a
// process group of its own, in the fixed environment (pkg/rootexec) plus
// env, once the trust rule has passed it again, through the file that is
// exec'd. Each line it prints goes to logLine. It returns when the script
// exits; when ctx ends first, the script's process group is killed.
// started, if set, hears the script's pid once it runs. A refusal of the
// trust rule is a *trust.Refusal: the script did not run.
//
// Output is read from a pipe we own rather than through exec.Cmd's copying,
// because a daemon the script starts inherits the pipe and may keep it open
// for its whole life: we wait for the script, never for the pipe's EOF.
func runScript(ctx context.Context, argv []string, env []string, logLine func(string), started func(pid int)) error {
	return runPrepared(ctx, rootexec.Command, argv, env, logLine, started)
}

// runPrepared is runScript with the command made by prepare.
func runPrepared(ctx context.Context, prepare func(argv, env []string) (*rootexec.Cmd, error), argv []string, env []string, logLine func(string), started func(pid int)) error {
	if len(argv) == 0 {
		return errors.New("no script to run")
	}
	cmd, err := prepare(argv, env)
	if err != nil {
		return err
	}
	defer cmd.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	group := pgroup.New(cmd.Cmd)
	defer group.Close()
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go logLines(r, logLine)
	if started != nil {
		started(cmd.Process.Pid)
	}
	// Wait kills the group, if ctx ends first, before it reaps the script:
	// its number can then name no other group.
	if err := group.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s did not finish in time: %w", argv[0], err)
		}
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

// runScript is runScript that logs a refusal of the trust rule to syslog
// (its own line): the attempt fails without the script having run. With
// UnsafeSkipTrust the refusal only warns, and the script runs.
func (s *Service) runScript(ctx context.Context, argv []string, env []string, logLine func(string), started func(pid int)) error {
	prepare := rootexec.Command
	if s.d.UnsafeSkipTrust {
		prepare = func(argv, env []string) (*rootexec.Cmd, error) {
			return rootexec.CommandUnsafe(argv, env, func(r *trust.Refusal) {
				s.d.Slog.Warn("trust rule off: run anyway", "service", s.cfg.Name, "problem", r.Error())
			})
		}
	}
	err := runPrepared(ctx, prepare, argv, env, logLine, started)
	var refused *trust.Refusal
	if errors.As(err, &refused) {
		s.log(msg.ProgramRefused(s.cfg.Name, refused.Program, refused.Why()))
	}
	return err
}

// logLines logs r line by line until EOF. A line longer than maxScriptLine
// is logged cut short and the rest of it skipped: reading must go on, or
// the script (and any daemon sharing its output) would die of SIGPIPE.
func logLines(r io.ReadCloser, logLine func(string)) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxScriptLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			cut := errors.Is(err, bufio.ErrBufferFull)
			text := strings.TrimRight(string(line), "\r\n")
			if cut {
				text += " [line cut]"
			}
			logLine(text)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil {
			return
		}
	}
}
