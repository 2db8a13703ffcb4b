// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
)

// Through the real kernel log: a user names a file like the OOM killer's
// report for the watched process's pid and runs it so that it segfaults;
// the kernel's segfault line prints the file's name. A root kill -9 of
// the watched process then stays a kill by its sender (ebpf names it), not
// an OOM kill.
func TestSegfaultFileNameIsNoOOMKill(t *testing.T) {
	testpriv.Root(t)
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			m := openMux(t, backend)
			if m.oom == nil {
				testpriv.Unavailable(t, "the kernel log cannot be read here")
			}
			s := newSinkLog()
			v := m.NewView()
			v.Attach(s)
			p := testproc.Sleep(t)
			watchOne(v, p.ID)

			name := fmt.Sprintf("Killed process %d (x) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", p.ID.PID)
			crashInto(t, testproc.CopyBinary(t, name), name)

			kill := exec.Command("/bin/kill", "-9", strconv.Itoa(p.ID.PID))
			if out, err := kill.CombinedOutput(); err != nil {
				t.Fatalf("kill: %v\n%s", err, out)
			}
			ev := s.waitExit(t, p.ID)
			if ev.OOM != nil || !ev.Known || ev.Signal != int(syscall.SIGKILL) {
				t.Fatalf("%s: the kill after the crafted segfault reported as %+v (OOM %+v), want a plain SIGKILL", backend, ev, ev.OOM)
			}
			want := &Sender{PID: kill.Process.Pid, Comm: "kill", UID: 0}
			if backend == "ebpf" && (ev.Sender == nil || *ev.Sender != *want) {
				t.Errorf("ebpf: the sender is %+v, want %+v: the crafted line dropped it", ev.Sender, want)
			}
		})
	}
}

// crashInto runs exe until it segfaults and waits until the kernel log has
// the segfault line naming file (printk rate-limits it: try again).
func crashInto(t *testing.T, exe, file string) {
	t.Helper()
	log, err := openOOMLog()
	if err != nil {
		t.Fatal(err)
	}
	defer log.close()
	deadline := time.Now().Add(testproc.Deadline)
	for time.Now().Before(deadline) {
		err := exec.Command(exe, "segv").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGSEGV {
			t.Fatalf("%s segv: %v, want a SIGSEGV", filepath.Base(exe), err)
		}
		if logged(log, "segfault at", " in "+file+"[") {
			return
		}
		time.Sleep(time.Second) // the kernel's rate limit on segfault lines
	}
	testpriv.Unavailable(t, "the kernel logged no segfault line (debug.exception-trace off, or rate-limited throughout)")
}

// logged reads what the kernel logged since the last call and says whether
// a record held all of parts. The line was logged before the crashed
// process could be reaped.
func logged(l *oomLog, parts ...string) bool {
	buf := make([]byte, 8192)
	found := false
	for {
		n, err := syscall.Read(int(l.f.Fd()), buf)
		if err == syscall.EPIPE || err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return found
		}
		rec := string(buf[:n])
		all := true
		for _, p := range parts {
			all = all && strings.Contains(rec, p)
		}
		found = found || all
	}
}
