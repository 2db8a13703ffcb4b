package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/pwatch/pwatch/internal/pgroup"
)

// maxScriptLine bounds one logged line of a script's output.
const maxScriptLine = 4096

// runScript runs argv directly (no shell: its own #! line decides) in a
// process group of its own, with env added to pcheck's environment. Each line
// it prints goes to logLine. It returns when the script exits; when ctx ends
// first, the script's process group is killed. started, if set, hears the
// script's pid once it runs.
//
// Output is read from a pipe we own rather than through exec.Cmd's copying,
// because a daemon the script starts inherits the pipe and may keep it open
// for its whole life: we wait for the script, never for the pipe's EOF.
func runScript(ctx context.Context, argv []string, env []string, logLine func(string), started func(pid int)) error {
	if len(argv) == 0 {
		return errors.New("no script to run")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(inheritedEnv(), env...)
	cmd.Stdout, cmd.Stderr = w, w
	group := pgroup.New(cmd)
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

// systemdOnly are the variables systemd hands pcheck itself: a service a
// script starts must not take pcheck's notify socket or watchdog for its own.
var systemdOnly = []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES="}

// inheritedEnv is pcheck's environment less what is pcheck's alone.
func inheritedEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return slices.ContainsFunc(systemdOnly, func(p string) bool { return strings.HasPrefix(kv, p) })
	})
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
