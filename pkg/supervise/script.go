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
	"syscall"
)

// maxScriptLine bounds one logged line of a script's output.
const maxScriptLine = 4096

// runScript runs argv directly (no shell: its own #! line decides) in a
// process group of its own, with env added to pcheck's environment. Each line
// it prints goes to logLine. It returns when the script exits; when ctx ends
// first, the whole process group is killed.
//
// Output is read from a pipe we own rather than through exec.Cmd's copying,
// because a daemon the script starts inherits the pipe and may keep it open
// for its whole life: we wait for the script, never for the pipe's EOF.
func runScript(ctx context.Context, argv []string, env []string, logLine func(string)) error {
	if len(argv) == 0 {
		return errors.New("no script to run")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(inheritedEnv(), env...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The script leads its group and stays unreaped until Wait returns, so
	// -pid names its group and nothing else.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go logLines(r, logLine)
	err = cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("%s did not finish in time: %w", argv[0], ctx.Err())
	}
	if err != nil {
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

func logLines(r io.ReadCloser, logLine func(string)) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxScriptLine)
	for sc.Scan() {
		logLine(sc.Text())
	}
}
