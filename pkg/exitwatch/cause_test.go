// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// causeCases are what each backend, behind the Mux as pcheck uses it,
// says of why a process died: what every backend knows (exit status,
// signal, core dump, an OOM kill through the kernel log) and what only
// ebpf knows (the sender of a signal).
var causeCases = []struct {
	name string
	run  func(t *testing.T, backend string, v *View, s *sinkLog)
}{
	{"exit-3", testCauseExit},
	{"kill-by-a-helper", testCauseSender},
	{"core-dumped", testCauseCore},
	{"oom-then-reused-pid", testCauseOOM},
}

func TestCauses(t *testing.T) {
	testpriv.Root(t)
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			for _, c := range causeCases {
				t.Run(c.name, func(t *testing.T) {
					m := openMux(t, backend)
					s := newSinkLog()
					v := m.NewView()
					v.Attach(s)
					c.run(t, backend, v, s)
				})
			}
		})
	}
}

func watchOne(v *View, id proc.ID) { v.Watch(proc.Match{Process: proc.Process{ID: id}}) }

func testCauseExit(t *testing.T, _ string, v *View, s *sinkLog) {
	p := testproc.Exit(t, 3)
	watchOne(v, p.ID)
	p.Trigger()
	ev := s.waitExit(t, p.ID)
	if !ev.Known || ev.ExitStatus != 3 || ev.Signal != 0 || ev.OOM != nil || ev.Sender != nil {
		t.Errorf("exit 3 reported as %+v", ev)
	}
}

// A kill -9 by a helper process whose pid and comm the test knows: ebpf
// names it; the others know only the signal.
func testCauseSender(t *testing.T, backend string, v *View, s *sinkLog) {
	p := testproc.Sleep(t)
	watchOne(v, p.ID)
	kill := exec.Command("/bin/kill", "-9", strconv.Itoa(p.ID.PID))
	if out, err := kill.CombinedOutput(); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	ev := s.waitExit(t, p.ID)
	if !ev.Known || ev.Signal != int(syscall.SIGKILL) || ev.OOM != nil {
		t.Fatalf("kill -9 reported as %+v", ev)
	}
	want := &Sender{PID: kill.Process.Pid, Comm: "kill", UID: 0}
	switch {
	case backend == "ebpf" && (ev.Sender == nil || *ev.Sender != *want):
		t.Errorf("ebpf named the sender %+v, want %+v", ev.Sender, want)
	case backend != "ebpf" && ev.Sender != nil:
		t.Errorf("%s cannot know the sender, yet named %+v", backend, ev.Sender)
	}
}

func testCauseCore(t *testing.T, backend string, v *View, s *sinkLog) {
	pattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	if len(pattern) == 0 || pattern[0] == '|' {
		testpriv.Unavailable(t, "core_pattern pipes cores to a handler ("+string(pattern)+"): the dump's success is its")
	}
	p := testproc.CoreDump(t, t.TempDir())
	watchOne(v, p.ID)
	p.Trigger()
	ev := s.waitExit(t, p.ID)
	if !ev.Known || ev.Signal != int(syscall.SIGSEGV) || !ev.CoreDumped || ev.Sender != nil {
		t.Errorf("a fault that dumped core reported as %+v (a fault has no sender)", ev)
	}
}

// memcgV1 is the cgroup v1 memory controller's mount on this kind of host.
const memcgV1 = "/sys/fs/cgroup/memory"

// newMemcg makes a memory cgroup limited to limit bytes, removed when the
// test ends (after its processes, which are cleaned up first).
func newMemcg(t *testing.T, limit int) (path, name string) {
	t.Helper()
	if _, err := os.Stat(memcgV1 + "/memory.limit_in_bytes"); err != nil {
		testpriv.Unavailable(t, "no cgroup v1 memory controller at "+memcgV1)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "pwatch-oom-" + hex.EncodeToString(b[:])
	path = filepath.Join(memcgV1, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("removing the test's memory cgroup: %v", err)
		}
	})
	write := func(file, value string) {
		if err := os.WriteFile(filepath.Join(path, file), []byte(value), 0o644); err != nil {
			t.Fatalf("%s/%s: %v", path, file, err)
		}
	}
	write("memory.limit_in_bytes", strconv.Itoa(limit))
	if _, err := os.Stat(filepath.Join(path, "memory.memsw.limit_in_bytes")); err == nil {
		write("memory.memsw.limit_in_bytes", strconv.Itoa(limit))
	}
	return path, name
}

// A process in a small memory cgroup allocates past its limit: every
// backend says the OOM killer chose it, with the cgroup and its rss (from
// the kernel log). Its pid, given to a new process, does not carry that
// over: the new one killed by a signal is a signal's. Another process on
// the host may take the pid first and keep it; then the kill is made
// again, with a new pid.
func testCauseOOM(t *testing.T, backend string, v *View, s *sinkLog) {
	cg, name := newMemcg(t, 32<<20)
	for round := 1; ; round++ {
		p := testproc.Alloc(t)
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(p.ID.PID)), 0o644); err != nil {
			t.Fatal(err)
		}
		watchOne(v, p.ID)
		p.Trigger()
		ev := s.waitExit(t, p.ID)
		if !ev.Known || ev.Signal != int(syscall.SIGKILL) || ev.OOM == nil {
			t.Fatalf("%s: the OOM kill reported as %+v", backend, ev)
		}
		if ev.OOM.Memcg != "/"+name || ev.OOM.RSSKiB <= 0 {
			t.Errorf("%s: OOM kill details %+v, want memory cgroup /%s and an rss", backend, *ev.OOM, name)
		}
		p.Reap()

		reused := reusePID(t, p.ID.PID)
		if reused == nil {
			if round == 5 {
				t.Fatalf("in 5 OOM kills, another process took the killed pid each time")
			}
			continue
		}
		watchOne(v, reused.ID)
		reused.Signal(syscall.SIGKILL)
		again := s.waitExit(t, reused.ID)
		if again.OOM != nil || again.Signal != int(syscall.SIGKILL) {
			t.Errorf("%s: the reused pid's kill reported as %+v; the OOM kill of %v must not carry over", backend, again, p.ID)
		}
		return
	}
}

// reusePID starts a process that gets pid, by setting the kernel's last
// pid just below it. Other processes forking meanwhile can take it: while
// it is free again, it tries again; once another process holds it, it
// returns nil.
func reusePID(t *testing.T, pid int) *testproc.Proc {
	t.Helper()
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0o644); err != nil {
			testpriv.Unavailable(t, "cannot choose the next pid: "+err.Error())
		}
		p := testproc.Sleep(t)
		if p.ID.PID == pid {
			return p
		}
		p.Signal(syscall.SIGKILL)
		p.Reap()
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Logf("pid %d was taken by another process", pid)
			return nil
		}
	}
	t.Fatalf("pid %d, free, was never handed out again in 50 tries", pid)
	return nil
}
