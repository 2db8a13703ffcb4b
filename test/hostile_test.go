// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
)

// TestHostileSenderComm: a process names itself with a newline, a syslog
// priority, an escape sequence, binary and invalid UTF-8 (any user can
// write its /proc/self/comm) and then kills the service. ebpf records that
// comm as the sender's; the syslog line, padmin status and the restart
// script's PWATCH_SENDER_COMM all carry it quoted (internal/quote), never
// raw.
func TestHostileSenderComm(t *testing.T) {
	testpriv.Root(t)
	const comm = "x\n<11>F\033[8m\001\377"
	const quoted = `x\x0a<11>F\x1b[8m\x01\xff`
	sc := newScene(t)
	exe := testproc.CopyBinary(t, "pwatch-hostile")
	ready, seen := t.TempDir(), filepath.Join(sc.dir, "sender-comm")
	script := filepath.Join(sc.dir, "start")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\n[ -z \"$PWATCH_SENDER_COMM\" ] || printf '%%s' \"$PWATCH_SENDER_COMM\" > %s\nexec setsid -f %s service %s </dev/null >/dev/null 2>&1\n",
		seen, exe, ready), 0o755)
	t.Cleanup(func() { killExe(exe) })
	pf := filepath.Join(sc.dir, "svc.pfile")
	writeFile(t, pf, fmt.Sprintf("process %s\nrestart_script %s\nretry_count 10\nkill_timeout 1\n", exe, script), 0o644)

	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	lines, err := p.rawLines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	pid := upPID(t, lines[1], "svc")

	// The shell renames itself, then kills with its builtin: the signal's
	// sender is the renamed process.
	killer := exec.Command("/bin/sh", "-c", fmt.Sprintf(`printf 'x\n<11>F\033[8m\001\377' > /proc/$$/comm && kill -9 %d`, pid))
	if out, err := killer.CombinedOutput(); err != nil {
		t.Fatalf("the renamed killer: %v\n%s", err, out)
	}
	got, err := p.rawLines(waitCtx(t), 6)
	if err != nil {
		t.Fatal(err)
	}
	want := ended("svc", pid, fmt.Sprintf("killed by signal 9 (SIGKILL), sent by pid %d (%s, uid 0)", killer.Process.Pid, quoted))
	if got[3] != want {
		t.Errorf("the ending line is\n\t%q\nwant\n\t%q", got[3], want)
	}
	for _, m := range sc.syslog.Messages() {
		if strings.ContainsAny(m.Raw, "\n\033\001\377") || m.Err != nil {
			t.Errorf("syslog got a raw control byte or a broken record: %q", m.Raw)
		}
	}
	upPID(t, got[5], "svc")

	pollUntil(t, "saw the restart script record PWATCH_SENDER_COMM", func() bool {
		_, err := os.Stat(seen)
		return err == nil
	})
	if env, _ := os.ReadFile(seen); string(env) != quoted {
		t.Errorf("the restart script saw PWATCH_SENDER_COMM=%q, want %q", env, quoted)
	}

	status := exec.Command(bin.padmin, "--control-socket", p.control, "--syslog-socket", sc.syslog.Path(), "status")
	out, err := status.CombinedOutput()
	if err != nil {
		t.Fatalf("padmin status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "("+quoted+", uid 0)") || strings.ContainsAny(string(out), "\033\001\377") ||
		strings.Count(string(out), "\n") != 2 {
		t.Errorf("padmin status shows the comm raw or not at all:\n%q", out)
	}
}
