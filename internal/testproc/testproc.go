// SPDX-License-Identifier: Apache-2.0

// Package testproc starts real processes for tests that watch processes
// die: exits with a chosen status, a real segmentation fault, multi-threaded
// processes, and unreaped zombies. Each process acts only when the test says
// so (Trigger), so a test can start watching first.
//
// The processes are one small C program (csrc/helper.c), compiled with cc
// on first use and cached by the hash of its source: Go's runtime turns
// faults into panics and is always multi-threaded, so it cannot play these
// parts honestly.
package testproc

import (
	"bufio"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/proc"
)

//go:embed csrc/helper.c
var helperSource []byte

// Deadline bounds every wait on a helper: generous, since a loaded CI host
// may be slow; reaching it means the helper misbehaves.
const Deadline = 30 * time.Second

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the compiled helper program.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildPath, buildErr = build() })
	if errors.Is(buildErr, exec.ErrNotFound) {
		testpriv.Unavailable(t, "no C compiler (cc) to build the test helper process")
	}
	if buildErr != nil {
		t.Fatalf("building the test helper: %v", buildErr)
	}
	return buildPath
}

// build compiles the helper into the user cache, once per source version;
// the rename makes concurrent test binaries safe.
func build() (string, error) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", err
	}
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("helper-%x", sha256.Sum256(helperSource))[:len("helper-")+16])
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "helper.c")
	if err := os.WriteFile(src, helperSource, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(work, "helper")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", cc, err, out)
	}
	return path, os.Rename(bin, path)
}

// cacheDir is the user's cache, or a per-user temporary directory for
// users without a home (nobody).
func cacheDir() (string, error) {
	if dir, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(dir, "pwatch-testproc")
		if os.MkdirAll(dir, 0o755) == nil {
			return dir, nil
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pwatch-testproc-%d", os.Getuid()))
	return dir, os.MkdirAll(dir, 0o700)
}

// CopyBinary puts a private copy of the helper in a temporary directory, so
// that processes started from it are the test's own (for exec watches).
func CopyBinary(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := WriteExecutable(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteExecutable writes a file that is to be exec'd (a program, a
// script). A fork by another test while the file is open for writing
// leaves it open in that child until the child's exec, and exec'ing the
// file meanwhile fails with ETXTBSY ("text file busy", golang/go#22315):
// no fork of this process starts while it is open.
func WriteExecutable(path string, data []byte, perm os.FileMode) error {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	return os.WriteFile(path, data, perm)
}

// Proc is one helper process (for Zombie, the unreaped child).
type Proc struct {
	ID  proc.ID
	t   testing.TB
	cmd *exec.Cmd
	// stdin is the trigger: closing it makes the helper act.
	stdin  io.WriteCloser
	stdout *bufio.Reader
	direct bool // ID is cmd's process (not a grandchild)
}

// Exit starts a process that exits with code when triggered.
func Exit(t testing.TB, code int) *Proc {
	t.Helper()
	return ExitFrom(t, Binary(t), code)
}

// ExitFrom is Exit running the executable exe (a CopyBinary).
func ExitFrom(t testing.TB, exe string, code int) *Proc {
	t.Helper()
	return start(t, exe, true, false, "exit", strconv.Itoa(code))
}

// Segfault starts a process that, when triggered, writes through a NULL
// pointer and is killed by SIGSEGV (without a core dump).
func Segfault(t testing.TB) *Proc {
	t.Helper()
	return start(t, Binary(t), true, false, "segv")
}

// CoreDump starts a process that, when triggered, faults and dumps core
// into dir (where core_pattern writes a file, it lands there).
func CoreDump(t testing.TB, dir string) *Proc {
	t.Helper()
	return start(t, Binary(t), true, false, "coredump", dir)
}

// Alloc starts a process that, when triggered, allocates and touches
// memory without end: in a memory cgroup with a limit, the OOM killer's.
func Alloc(t testing.TB) *Proc {
	t.Helper()
	return start(t, Binary(t), true, false, "alloc")
}

// Sleep starts a process that runs until killed; it cannot be triggered.
func Sleep(t testing.TB) *Proc {
	t.Helper()
	return start(t, Binary(t), false, false, "sleep")
}

// Threads starts a process with n extra threads. StopThreads makes those
// exit, ExitLeader makes the main thread exit alone, Trigger makes the whole
// process exit with code.
func Threads(t testing.TB, n, code int) *Proc {
	t.Helper()
	p := start(t, Binary(t), true, true, "threads", strconv.Itoa(n), strconv.Itoa(code))
	p.expectLine("ready")
	return p
}

// RunningFrom starts the executable exe (a CopyBinary) and returns once it
// runs its own code: its exec is over, and every report of it made.
// Trigger makes it exit 0.
func RunningFrom(t testing.TB, exe string) *Proc {
	t.Helper()
	p := start(t, exe, true, true, "threads", "0", "0")
	p.expectLine("ready")
	return p
}

// Zombie starts a parent that forks a child and never reaps it; the Proc is
// the child. When triggered the child exits with code and stays a zombie
// until cleanup kills the parent.
func Zombie(t testing.TB, code int) *Proc {
	t.Helper()
	p := start(t, Binary(t), true, true, "zombie", strconv.Itoa(code))
	line := p.readLine()
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("zombie helper printed %q, want a pid", line)
	}
	if p.ID, err = readID(pid); err != nil {
		t.Fatalf("zombie helper's child %d: %v", pid, err)
	}
	p.direct = false
	return p
}

// Crowd puts n idle processes on the host (a busy host's unrelated ones)
// until the test ends, when they are killed and reaped before cleanup
// returns.
func Crowd(t testing.TB, n int) {
	t.Helper()
	if n <= 0 {
		return
	}
	p := start(t, Binary(t), true, true, "crowd", strconv.Itoa(n))
	if got := p.readLine(); got != fmt.Sprintf("ready %d", n) {
		t.Fatalf("crowd of %d: helper said %q", n, got)
	}
	// Cleanups run last-added first: this one, before start's kill, lets
	// the helper reap its children itself.
	t.Cleanup(func() {
		p.stdin.Close()
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(Deadline):
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
}

// Forker starts a master that forks on command (Fork, ForkExec) and can
// exec itself anew (Reexec); closing its stdin (Trigger) makes it exit 0,
// leaving its children. Each child is killed at cleanup, by identity.
func Forker(t testing.TB, exe string) *Proc {
	t.Helper()
	return start(t, exe, true, true, "forker")
}

// Fork makes a Forker fork a worker: a copy of itself that runs until
// killed.
func (p *Proc) Fork() proc.ID { return p.forkChild('w') }

// ForkExec makes a Forker fork a child that runs /bin/sleep, a program
// of another name.
func (p *Proc) ForkExec() proc.ID { return p.forkChild('c') }

func (p *Proc) forkChild(c byte) proc.ID {
	p.t.Helper()
	p.command(c)
	line := p.readLine()
	pid, err := strconv.Atoi(line)
	if err != nil {
		p.t.Fatalf("forker printed %q, want a pid", line)
	}
	id, err := readID(pid)
	if err != nil {
		p.t.Fatalf("forker's child %d: %v", pid, err)
	}
	p.t.Cleanup(func() { killID(id) })
	return id
}

// Reexec makes a Forker exec its own program again: same pid, same start
// time, a new image.
func (p *Proc) Reexec() {
	p.t.Helper()
	p.command('x')
	p.expectLine("execed")
}

// killID kills id unless its pid now holds another process: checked
// through a pidfd, so the pid cannot be reused in between.
func killID(id proc.ID) {
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if now, err := readID(id.PID); err != nil || now != id {
		return
	}
	_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

func start(t testing.TB, exe string, trigger, output bool, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(exe, args...)
	// If the test binary dies, its helpers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	p := &Proc{t: t, cmd: cmd, direct: true}
	var err error
	if trigger {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if output {
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdout = bufio.NewReader(out)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %v: %v", exe, args, err)
	}
	t.Cleanup(p.cleanup)
	// The start time is set at fork; exec does not change it.
	if p.ID, err = readID(cmd.Process.Pid); err != nil {
		t.Fatalf("helper %d: %v", cmd.Process.Pid, err)
	}
	return p
}

// cleanup ends the helper (and, for a zombie, lets init reap the child: it
// exits on stdin EOF if never triggered, then loses its parent).
func (p *Proc) cleanup() {
	if p.stdin != nil {
		p.stdin.Close()
	}
	if p.cmd.ProcessState != nil {
		return // waited for already
	}
	// The helper is our unreaped child, so its pid cannot have been reused.
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// Reap waits for the helper to be gone, so its pid can be handed out again
// (only for a helper that has exited or is about to).
func (p *Proc) Reap() {
	p.t.Helper()
	if p.direct && p.cmd.ProcessState == nil {
		_ = p.cmd.Wait()
	}
}

// Trigger makes the helper act: exit, fault, or (Zombie) the child exit.
func (p *Proc) Trigger() {
	p.t.Helper()
	if p.stdin == nil {
		p.t.Fatal("this helper has no trigger")
	}
	if err := p.stdin.Close(); err != nil {
		p.t.Fatalf("trigger %v: %v", p.ID, err)
	}
}

// Signal sends sig to the process, after checking it is still p.ID.
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if p.direct {
		// Our unreaped child: the pid is ours until cmd.Wait.
		if err := p.cmd.Process.Signal(sig); err != nil {
			p.t.Fatalf("signal %v: %v", p.ID, err)
		}
		return
	}
	if id, err := readID(p.ID.PID); err != nil || id != p.ID {
		p.t.Fatalf("signal %v: no longer that process (%v, %v)", p.ID, id, err)
	}
	if err := syscall.Kill(p.ID.PID, sig); err != nil {
		p.t.Fatalf("signal %v: %v", p.ID, err)
	}
}

// StopThreads makes a Threads helper's extra threads exit and waits until
// they are joined.
func (p *Proc) StopThreads() {
	p.t.Helper()
	p.command('t')
	p.expectLine("ok")
	// A joined thread is gone from the process only once the kernel has
	// released it, a moment after the join returned.
	p.WaitFor("extra threads gone", func(s procfs.ProcStat) bool { return s.NumThreads == 1 })
}

// ExitLeader makes a Threads helper's main thread exit on its own (the
// process goes on in another thread) and waits until the kernel shows the
// leader as a zombie while the process lives on.
func (p *Proc) ExitLeader() {
	p.t.Helper()
	p.command('l')
	p.WaitFor("leader exited, other threads alive", func(s procfs.ProcStat) bool {
		return s.State == "Z" && s.NumThreads > 1
	})
}

// WaitZombie waits until the process is a zombie with no thread left.
func (p *Proc) WaitZombie() {
	p.t.Helper()
	p.WaitFor("zombie", func(s procfs.ProcStat) bool { return s.State == "Z" && s.NumThreads <= 1 })
}

// WaitFor polls /proc/PID/stat until cond holds, failing after Deadline.
func (p *Proc) WaitFor(what string, cond func(procfs.ProcStat) bool) {
	p.t.Helper()
	deadline := time.Now().Add(Deadline)
	for {
		st, err := stat(p.ID.PID)
		if err == nil && st.Starttime != p.ID.StartTime {
			p.t.Fatalf("%v: waiting for %s: pid now holds another process", p.ID, what)
		}
		if err == nil && cond(st) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%v: not %s after %v (last stat %+v, err %v)", p.ID, what, Deadline, st, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Threads reports how many threads /proc lists for the process.
func (p *Proc) Threads() int {
	p.t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.ID.PID))
	if err != nil {
		p.t.Fatalf("%v: %v", p.ID, err)
	}
	return len(tasks)
}

func (p *Proc) command(c byte) {
	p.t.Helper()
	if _, err := p.stdin.Write([]byte{c}); err != nil {
		p.t.Fatalf("%v: command %q: %v", p.ID, c, err)
	}
}

func (p *Proc) expectLine(want string) {
	p.t.Helper()
	if got := p.readLine(); got != want {
		p.t.Fatalf("%v: helper said %q, want %q", p.ID, got, want)
	}
}

// readLine reads one line of the helper's output, failing after Deadline.
func (p *Proc) readLine() string {
	p.t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := p.stdout.ReadString('\n')
		ch <- result{strings.TrimSuffix(line, "\n"), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			p.t.Fatalf("%v: reading helper output: %v", p.ID, r.err)
		}
		return r.line
	case <-time.After(Deadline):
		p.t.Fatalf("%v: helper silent for %v", p.ID, Deadline)
		return ""
	}
}

func stat(pid int) (procfs.ProcStat, error) {
	pr, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return pr.Stat()
}

func readID(pid int) (proc.ID, error) {
	st, err := stat(pid)
	if err != nil {
		return proc.ID{}, err
	}
	return proc.ID{PID: pid, StartTime: st.Starttime}, nil
}

// OwnCPUTime is the CPU this process has used so far, user and system:
// what a benchmark of work done in-process costs, the kernel's share
// included.
func OwnCPUTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
