// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseCommand(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string
	}{
		{"systemctl reboot", []string{"systemctl", "reboot"}},
		{"  /sbin/reboot\t-f  ", []string{"/sbin/reboot", "-f"}},
		{`'/opt/my tools/reboot' --why "retry over" a\ b`, []string{"/opt/my tools/reboot", "--why", "retry over", "a b"}},
		{`sh -c 'echo $HOME; exit 1'`, []string{"sh", "-c", "echo $HOME; exit 1"}},
		{`x "a\"b\\c\d" ''`, []string{"x", `a"b\c\d`, ""}},
		{`x pre'mid'"post"`, []string{"x", "premidpost"}},
	} {
		cmd, err := ParseCommand(c.line)
		if err != nil || !reflect.DeepEqual(cmd.Argv, c.want) {
			t.Errorf("ParseCommand(%q) = %q, %v; want %q", c.line, cmd.Argv, err, c.want)
		}
	}
	for _, bad := range []string{
		`x 'unterminated`, `x "unterminated`, `x \`,
		"systemctl reboot; rm -rf /", "reboot && echo", "echo $HOME", "reboot > /dev/null", "x *", "echo `id`",
	} {
		if cmd, err := ParseCommand(bad); err == nil {
			t.Errorf("ParseCommand(%q) = %q, want an error", bad, cmd.Argv)
		}
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, line := range []string{"", "   "} {
		cmd, err := ParseCommand(line)
		if err != nil || !reflect.DeepEqual(cmd.Argv, DefaultCommand().Argv) {
			t.Errorf("ParseCommand(%q) = %q, %v; want the default %q", line, cmd.Argv, err, DefaultCommand().Argv)
		}
	}
}

// The default is resolved, never run.
func TestDefaultCommand(t *testing.T) {
	found := func(string) (string, error) { return "/usr/bin/systemctl", nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	dir := func(string) bool { return true }
	noDir := func(string) bool { return false }
	for _, c := range []struct {
		name     string
		lookPath func(string) (string, error)
		isDir    func(string) bool
		want     []string
	}{
		{"systemd booted", found, dir, []string{"/usr/bin/systemctl", "reboot"}},
		{"systemctl but not booted with systemd", found, noDir, []string{"/sbin/reboot"}},
		{"no systemctl", missing, dir, []string{"/sbin/reboot"}},
	} {
		if got := defaultArgv(c.lookPath, c.isDir); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}

	// And on this host, from what it has.
	want := []string{"/sbin/reboot"}
	if p, err := exec.LookPath("systemctl"); err == nil {
		if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
			want = []string{p, "reboot"}
		}
	}
	if got := DefaultCommand().Argv; !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultCommand here = %q, want %q", got, want)
	}
}

func TestRunCapturesOutputAndStatus(t *testing.T) {
	out, err := Command{Argv: []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2"}}.Run(context.Background())
	if err != nil || !strings.Contains(string(out), "to-stdout") || !strings.Contains(string(out), "to-stderr") {
		t.Errorf("Run = %q, %v", out, err)
	}
	_, err = Command{Argv: []string{"sh", "-c", "echo cannot reboot >&2; exit 3"}}.Run(context.Background())
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 || !strings.Contains(err.Error(), "cannot reboot") {
		t.Errorf("failing command: %v; want exit status 3 and its output", err)
	}
	if _, err := (Command{Argv: []string{filepath.Join(t.TempDir(), "missing")}}).Run(context.Background()); err == nil {
		t.Error("a missing command succeeded")
	}
	if _, err := (Command{}).Run(context.Background()); err == nil {
		t.Error("an empty command succeeded")
	}
}

// A command that hangs is killed with everything it started.
func TestRunTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	cmd := Command{
		Argv: []string{"sh", "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile},
		// Long enough for a loaded host's sh to fork and write the pid.
		Timeout: 3 * time.Second,
	}
	_, err := cmd.Run(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("Run = %v, want a timeout", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's child %d outlived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone reports whether pid has exited (vanished or a zombie nobody reaped).
func gone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}
