// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
)

// TestCauseOfDeath: one service dies four ways through the real binaries,
// and the line after Down names it, its pid and the cause, as it came to
// syslog: a kill -9 by a helper process (ebpf names the sender; the
// others cannot), exit 3, a fault that dumped core, and the OOM killer in
// a memory cgroup (with the cgroup and rss, from the kernel log). The
// restart script sees the cause in its environment, and padmin status the
// last one.
func TestCauseOfDeath(t *testing.T) {
	testpriv.Root(t)
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		testpriv.Unavailable(t, "no cgroup v1 memory controller")
	}
	if pattern, err := os.ReadFile("/proc/sys/kernel/core_pattern"); err != nil || len(pattern) == 0 || pattern[0] == '|' {
		testpriv.Unavailable(t, "core_pattern is not a file name here")
	}
	for _, watcher := range []string{"ebpf", "netlink", "pidfd"} {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			exe := testproc.CopyBinary(t, "pwatch-cause-"+watcher)
			cores, envLog := t.TempDir(), filepath.Join(sc.dir, "env")
			script := filepath.Join(sc.dir, "start")
			writeFile(t, script, fmt.Sprintf("#!/bin/sh\nenv | grep ^PWATCH_ | sort | tr '\\n' ' ' >> %s\necho >> %s\nexec setsid -f %s service %s </dev/null >/dev/null 2>&1\n",
				envLog, envLog, exe, cores), 0o755)
			t.Cleanup(func() { killExe(exe) })
			pf := filepath.Join(sc.dir, "svc.pfile")
			writeFile(t, pf, fmt.Sprintf("process %s\nrestart_script %s\nretry_count 10\nkill_timeout 1\n", exe, script), 0o644)
			memcg := newMemcgDir(t, watcher)

			p := startPcheck(t, sc.syslog, sc.dir, watcher, pf)
			lines, err := p.rawLines(waitCtx(t), 2)
			if err != nil {
				t.Fatal(err)
			}
			r := &deathRig{t: t, p: p, cores: cores, pid: upPID(t, lines[1], "svc"), n: 2}
			r.killByCommand(watcher, envLog)

			r.die(r.signal(syscall.SIGUSR1), exact(ended("svc", r.pid, "exited with status 3")))
			if last := lastLine(t, envLog); !strings.Contains(last, "PWATCH_CAUSE=exit PWATCH_EXIT_STATUS=3 ") {
				t.Errorf("after exit 3 the restart script saw %q", last)
			}
			r.die(r.signal(syscall.SIGUSR2), exact(ended("svc", r.pid, "killed by signal 11 (SIGSEGV), core dumped")))
			r.die(func(pid int) {
				writeFile(t, filepath.Join(memcg, "cgroup.procs"), strconv.Itoa(pid), 0o644)
				r.signal(syscall.SIGHUP)(pid)
			}, regexp.MustCompile(`^Process \['svc',pid=\d+\] killed by the OOM killer \(memory cgroup /`+regexp.QuoteMeta(filepath.Base(memcg))+`, rss \d+ kB\)$`))
			st := p.waitState(t, "svc", "Up")
			if d := st.LastDeath; d == nil || d.Cause != "oom" || !d.OOM || d.RSSKiB <= 0 {
				t.Errorf("padmin status's last death: %+v, want the OOM kill", d)
			}
		})
	}
}

// deathRig kills the test service's process one way after another and
// reads pcheck's lines about each death.
type deathRig struct {
	t     *testing.T
	p     *pcheckRun
	cores string // where the service says it is ready
	pid   int    // the service's Up pid
	n     int    // pcheck's lines read so far
}

// die kills the Up process with how and expects Down, a line matching
// want, a restart and Up again.
func (r *deathRig) die(how func(pid int), want *regexp.Regexp) {
	t := r.t
	t.Helper()
	// Up comes as soon as the process runs the executable: wait until its
	// signal handlers are in place.
	pollUntil(t, fmt.Sprintf("saw pid %d ready", r.pid), func() bool {
		_, err := os.Stat(filepath.Join(r.cores, fmt.Sprintf("ready.%d", r.pid)))
		return err == nil
	})
	how(r.pid)
	got, err := r.p.rawLines(waitCtx(t), r.n+4)
	if err != nil {
		t.Fatal(err)
	}
	got = got[r.n:]
	if got[0] != down("svc", r.pid) || !want.MatchString(got[1]) || got[2] != tryRestart("svc") {
		t.Fatalf("pcheck logged\n\t%s\nwant Down, a line matching %s, a restart", strings.Join(got, "\n\t"), want)
	}
	t.Logf("%s", got[1])
	r.pid = upPID(t, got[3], "svc")
	r.n += 4
}

func (r *deathRig) signal(sig syscall.Signal) func(int) {
	return func(pid int) {
		if err := syscall.Kill(pid, sig); err != nil { // the Up pid, alive and ours
			r.t.Fatal(err)
		}
	}
}

// killByCommand kills the service with /bin/kill -9: the line says the
// signal (and, on ebpf, who sent it), and so does the restart script's
// environment.
func (r *deathRig) killByCommand(watcher, envLog string) {
	t := r.t
	var killer int
	r.die(func(pid int) {
		kill := exec.Command("/bin/kill", "-9", strconv.Itoa(pid))
		if out, err := kill.CombinedOutput(); err != nil {
			t.Fatalf("kill: %v\n%s", err, out)
		}
		killer = kill.Process.Pid
	}, regexp.MustCompile(`^Process \['svc',pid=\d+\] killed by signal 9 \(SIGKILL\)(, sent by pid \d+ \(kill, uid 0\))?$`))
	wantEnv := []string{"PWATCH_CAUSE=signal ", "PWATCH_SIGNAL=9 "}
	if watcher == "ebpf" {
		got, _ := r.p.rawLines(waitCtx(t), r.n)
		if want := fmt.Sprintf(", sent by pid %d (kill, uid 0)", killer); !strings.HasSuffix(got[r.n-3], want) {
			t.Errorf("ebpf: the kill's line %q does not name its sender (%s)", got[r.n-3], want)
		}
		wantEnv = append(wantEnv, "PWATCH_SENDER_COMM=kill ", fmt.Sprintf("PWATCH_SENDER_PID=%d ", killer))
	}
	last := lastLine(t, envLog) + " "
	for _, kv := range wantEnv {
		if !strings.Contains(last, kv) {
			t.Errorf("the restart script's environment %q lacks %q", last, kv)
		}
	}
}

func exact(s string) *regexp.Regexp { return regexp.MustCompile("^" + regexp.QuoteMeta(s) + "$") }

// newMemcgDir makes a 32 MiB memory cgroup (cgroup v1) for the test.
func newMemcgDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup/memory", "pwatch-e2e-"+strconv.Itoa(os.Getpid())+"-"+name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pollUntil(t, "removed the test's memory cgroup", func() bool { return os.Remove(dir) == nil })
	})
	writeFile(t, filepath.Join(dir, "memory.limit_in_bytes"), strconv.Itoa(32<<20), 0o644)
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
		writeFile(t, filepath.Join(dir, "memory.memsw.limit_in_bytes"), strconv.Itoa(32<<20), 0o644)
	}
	return dir
}

func lastLine(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}
