// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/internal/testport"
	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
)

// deadline bounds every wait: generous for a loaded CI host; reaching it
// means something is broken, not slow.
const deadline = 60 * time.Second

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// shortDir is a temporary directory with a short path: Unix socket paths
// are limited to 107 bytes, and t.TempDir() holds the test's name.
func shortDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// ports are the e2e tests' loopback ports (pkg/daemon's tests have theirs
// below these).
var ports = testport.NewSpan(21000, 32000)

func freePort(t testing.TB) int { return ports.Free(t) }

// syncBuffer is written concurrently while the test reads it.
type syncBuffer = syncbuf.Buffer

// pcheckRun is one `pcheck run` subprocess.
type pcheckRun struct {
	t   testing.TB
	cmd *exec.Cmd
	// logPID is the pid pcheck logs as (its own, unless it runs in a pid
	// namespace); signalPID the one to signal from here (the same, unless
	// a wrapper such as unshare stands between).
	logPID, signalPID int
	control           string
	syslog            *syslogtest.Server
	stderr            *syncBuffer
	exited            chan struct{}
	status            int // exit status, once exited is closed; -1 when killed by a signal
}

// startPcheck runs pcheck on pfiles with the given backend, logging to
// syslog, its control socket in dir. The test's cleanup stops it (SIGTERM)
// and reports its stderr when the test failed.
func startPcheck(t testing.TB, syslog *syslogtest.Server, dir, watcher string, pfiles ...string) *pcheckRun {
	t.Helper()
	return startPcheckWrapped(t, nil, syslog, dir, watcher, pfiles...)
}

// startPcheckInPIDNamespace runs pcheck as the init of a new pid namespace
// with its own /proc, as in a container (`unshare --pid --fork
// --mount-proc`).
func startPcheckInPIDNamespace(t testing.TB, syslog *syslogtest.Server, dir, watcher string, pfiles ...string) *pcheckRun {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testpriv.Unavailable(t, "no unshare(1) (util-linux) to make a pid namespace")
	}
	p := startPcheckWrapped(t, []string{unshare, "--pid", "--fork", "--mount-proc"}, syslog, dir, watcher, pfiles...)
	p.logPID = 1
	pollUntil(t, "saw unshare start pcheck", func() bool {
		select {
		case <-p.exited:
			return true // pcheck refused to start: the test reads why
		default:
		}
		kids := children(p.cmd.Process.Pid)
		if len(kids) == 1 {
			p.signalPID = kids[0] // unshare's unreaped child: its pid is stable
		}
		return len(kids) == 1
	})
	return p
}

func startPcheckWrapped(t testing.TB, wrapper []string, syslog *syslogtest.Server, dir, watcher string, pfiles ...string) *pcheckRun {
	t.Helper()
	p := &pcheckRun{
		t: t, control: filepath.Join(dir, "pcheck.sock"), syslog: syslog,
		stderr: &syncBuffer{}, exited: make(chan struct{}),
	}
	args := []string{"run", "--watcher", watcher, "--poll-interval", "100ms",
		"--syslog-socket", syslog.Path(), "--control-socket", p.control,
		"--state-dir", filepath.Join(dir, "state"),
		// Never the real reboot: a test that wants reboots records them
		// with a later --reboot-command.
		"--reboot-command", "/bin/false"}
	argv := append(append(slices.Clone(wrapper), bin.pcheck), append(args, pfiles...)...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	// pcheck must not take PWATCH_* settings from the test's environment.
	p.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PWATCH_") })
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pcheck: %v", err)
	}
	p.logPID, p.signalPID = p.cmd.Process.Pid, p.cmd.Process.Pid
	go func() {
		err := p.cmd.Wait()
		p.status = p.cmd.ProcessState.ExitCode()
		if err != nil && p.status == 0 {
			p.status = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pcheck (pid %d, %s) stderr:\n%s", p.pid(), watcher, p.stderr.String())
		}
	})
	return p
}

func (p *pcheckRun) pid() int { return p.cmd.Process.Pid }

// stop ends pcheck with SIGTERM, as an operator or systemd would, and
// waits for it; the services it watched are left running.
func (p *pcheckRun) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(p.signalPID, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(deadline):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("pcheck did not stop within %s of SIGTERM", deadline)
	}
}

// waitExit waits for pcheck to end on its own and returns its status.
func (p *pcheckRun) waitExit(ctx context.Context) (int, error) {
	select {
	case <-p.exited:
		return p.status, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("pcheck still runs: %w", ctx.Err())
	}
}

// diagnostics are the prefixes of pwatch's own syslog lines beside the
// catalogue (pkg/msg/diagnostics.go). lines and allLines leave them out:
// the tests of the catalogue's sequences read the catalogue alone, and
// those of the diagnostics wait for them by name.
var diagnostics = []string{"Running service adopted (", "Recovery timeout (", "Death watch stopped (", "Orphaned processes of a dead master killed (",
	"Rebooting the node (", "Retry over re-armed (", "Rules reloaded (", "Reload refused ("}

func isDiagnostic(text string) bool {
	return slices.ContainsFunc(diagnostics, func(p string) bool { return strings.HasPrefix(text, p) })
}

// lines waits until this pcheck has logged n syslog lines of the catalogue
// and returns the first n texts, without the sender of a signal (rawLines
// keeps it).
func (p *pcheckRun) lines(ctx context.Context, n int) ([]string, error) {
	got, err := p.rawLines(ctx, n)
	for i := range got {
		got[i] = withoutSender(got[i])
	}
	return got, err
}

// rawLines is lines as pcheck wrote them.
func (p *pcheckRun) rawLines(ctx context.Context, n int) ([]string, error) {
	var got []string
	_, err := p.syslog.WaitMatch(ctx, fmt.Sprintf("%d lines from pcheck[%d]", n, p.logPID), func(m syslogtest.Message) bool {
		if m.Ident == "pcheck" && m.PID == p.logPID && !isDiagnostic(m.Text) {
			got = append(got, m.Text)
		}
		return len(got) == n
	})
	return got, err
}

// expectLines checks that this pcheck's syslog lines, from the first, are
// exactly want.
func (p *pcheckRun) expectLines(t testing.TB, want ...string) {
	t.Helper()
	got, err := p.lines(waitCtx(t), len(want))
	if err != nil {
		t.Fatalf("%v\nwant the lines:\n\t%s", err, strings.Join(want, "\n\t"))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pcheck[%d] logged:\n\t%s\nwant:\n\t%s", p.pid(), strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// allLines is every catalogue line this pcheck has logged so far.
func (p *pcheckRun) allLines() []string {
	var out []string
	for _, m := range p.syslog.Messages() {
		if m.Ident == "pcheck" && m.PID == p.logPID && !isDiagnostic(m.Text) {
			out = append(out, withoutSender(m.Text))
		}
	}
	return out
}

// waitState polls padmin's status of name until its state is want, and
// returns that status.
func (p *pcheckRun) waitState(t testing.TB, name, want string) control.ServiceStatus {
	t.Helper()
	ctx := waitCtx(t)
	c := control.Client{Path: p.control}
	var last any = "no answer"
	for {
		st, err := c.Status(ctx, name)
		switch {
		case err != nil:
			last = err
		case len(st) != 1:
			last = fmt.Sprintf("%d services", len(st))
		case st[0].State == want:
			return st[0]
		default:
			last = st[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("service %s never %s: last status %+v", name, want, last)
		case <-p.exited:
			t.Fatalf("pcheck ended (status %d) before service %s was %s", p.status, name, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// padmin runs padmin against p with args and returns its pid; it must
// succeed.
func (p *pcheckRun) padmin(t testing.TB, args ...string) int {
	t.Helper()
	all := append([]string{"--control-socket", p.control, "--syslog-socket", p.syslog.Path()}, args...)
	cmd := exec.Command(bin.padmin, all...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("padmin %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return cmd.Process.Pid
}

// expectPadminLine checks padmin[pid] logged exactly text.
func expectPadminLine(t testing.TB, syslog *syslogtest.Server, pid int, text string) {
	t.Helper()
	m, err := syslog.WaitMatch(waitCtx(t), fmt.Sprintf("a line from padmin[%d]", pid), func(m syslogtest.Message) bool {
		return m.Ident == "padmin" && m.PID == pid
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != text {
		t.Fatalf("padmin[%d] logged %q, want %q", pid, m.Text, text)
	}
}

// getHTTP polls GET url until it answers 200 with a body holding want.
func getHTTP(t testing.TB, url, want string) {
	t.Helper()
	getWith(t, &http.Client{Timeout: 5 * time.Second}, url, want)
}

// getWith GETs url with client until it answers 200 with want in its body.
func getWith(t testing.TB, client *http.Client, url, want string) {
	t.Helper()
	ctx := waitCtx(t)
	var last any
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return
			}
			last = fmt.Sprintf("%s: %q", resp.Status, body)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s never answered 200 with %q: last %v", url, want, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pollUntil calls f until it returns true or the deadline passes.
func pollUntil(t testing.TB, what string, f func() bool) {
	t.Helper()
	ctx := waitCtx(t)
	for !f() {
		select {
		case <-ctx.Done():
			t.Fatalf("never %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// alive reports whether pid runs (not a zombie, not gone).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	st := stat[i+2]
	return st != 'Z' && st != 'X'
}

// children lists the running children of pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, c)
		}
	}
	return out
}

// kill9 sends SIGKILL to pid; it must exist.
func kill9(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

// waitGone waits until pid is a zombie or gone.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("saw pid %d end", pid), func() bool { return !alive(pid) })
}

// writeFile writes a file, failing the test on error; not one a fork
// could inherit open (testproc.WriteExecutable).
func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := testproc.WriteExecutable(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// ignoreGone is nil for the errors of a process that already ended.
func ignoreGone(err error) error {
	if errors.Is(err, syscall.ESRCH) || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// pidsWhere lists the live processes for which ours is true.
func pidsWhere(ours func(pid int) bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && alive(pid) && ours(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// runs is true of the processes running exe (also after it was replaced
// on disk).
func runs(exe string) func(pid int) bool {
	return func(pid int) bool {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return err == nil && strings.TrimSuffix(link, " (deleted)") == exe
	}
}

// killWhere SIGKILLs the processes for which ours is true until none is
// left (a test's cleanup: masters may fork while they die).
func killWhere(ours func(pid int) bool) {
	for range 100 {
		left := pidsWhere(ours)
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			_ = ignoreGone(syscall.Kill(pid, syscall.SIGKILL))
		}
		for _, pid := range left {
			for i := 0; i < 1000 && alive(pid); i++ {
				syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
			}
		}
	}
}

// killExe kills every process running exe.
func killExe(exe string) { killWhere(runs(exe)) }
