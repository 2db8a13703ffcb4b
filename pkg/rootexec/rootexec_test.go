// SPDX-License-Identifier: Apache-2.0

package rootexec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/pkg/trust"
)

func run(t *testing.T, argv []string, env []string) string {
	t.Helper()
	cmd, err := Command(argv, env)
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Close()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	return out.String()
}

// A program runs in the fixed environment, however pcheck was started:
// PATH, umask 022, cwd /, and of pcheck's variables only PWATCH_*.
func TestFixedEnvironment(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "show")
	body := "#!/bin/sh\necho \"path=$PATH\"\necho \"umask=$(umask)\"\necho \"cwd=$(pwd)\"\necho \"zero=$0 args=$*\"\nenv | sort\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PCHECK_SECRET", "leaked")
	t.Setenv("HOME", "/root/leaked")
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("PWATCH_KEEP", "kept")
	t.Setenv("PWATCH_SERVICE", "from-pcheck")
	if err := os.Chdir(dir); err != nil { // Chdir is undone by the test's end below
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir("/") })
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })

	out := run(t, []string{script, "one", "two"}, []string{"PWATCH_SERVICE=web"})
	for _, want := range []string{
		"path=/usr/sbin:/usr/bin:/sbin:/bin\n", "umask=0022\n", "cwd=/\n",
		"zero=" + script + " args=one two\n", "PWATCH_KEEP=kept\n", "PWATCH_SERVICE=web\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the script's output:\n%s", want, out)
		}
	}
	for _, leak := range []string{"leaked", "NOTIFY_SOCKET", "from-pcheck", dir + ":"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q reached the script:\n%s", leak, out)
		}
	}
}

// What runs is the file that was checked, exec'd through its descriptor,
// which the program does not inherit.
func TestRunsTheCheckedFile(t *testing.T) {
	out := run(t, []string{"/bin/sh", "-c", `readlink /proc/$$/exe; for f in /proc/$$/fd/*; do echo "fd $(readlink $f)"; done`}, nil)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sh, _ := filepath.EvalSymlinks("/bin/sh")
	if len(lines) < 2 || lines[0] != sh {
		t.Fatalf("output %q, want %s first", out, sh)
	}
	for _, l := range lines[1:] {
		if l == "fd "+sh {
			t.Errorf("the program inherited the descriptor it was exec'd through:\n%s", out)
		}
	}
}

func TestRefusal(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "open")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o757); err != nil {
		t.Fatal(err)
	}
	_, err := Command([]string{script}, nil)
	var r *trust.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("Command = %v, want a refusal", err)
	}
}

// BenchmarkCommand measures the check before each run: the walk, the
// opens and fstats of a #!/bin/sh script and its interpreter.
func BenchmarkCommand(b *testing.B) {
	script := filepath.Join(b.TempDir(), "x.restart")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd, err := Command([]string{script}, nil)
		if err != nil {
			b.Fatal(err)
		}
		cmd.Close()
	}
}

// #!/usr/bin/env NAME: env, exec'd through its descriptor, finds NAME in
// the fixed PATH, and the script still sees its own path as $0.
func TestEnvScript(t *testing.T) {
	script := filepath.Join(t.TempDir(), "via-env")
	if err := os.WriteFile(script, []byte("#!/usr/bin/env sh\necho \"zero=$0 arg=$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, want := run(t, []string{script, "x"}, nil), "zero="+script+" arg=x\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}
