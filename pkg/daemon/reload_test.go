// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/proc"
)

// fakeService is a copy of sleep(1) under a name of its own, with a pfile
// whose restart script starts it detached.
type fakeService struct {
	name, exe, pfile string
}

func newFakeService(t *testing.T, dir, pfileDir, name, extra string) fakeService {
	t.Helper()
	exe := filepath.Join(dir, name)
	b, err := os.ReadFile("/usr/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, name+".restart")
	os.WriteFile(script, []byte("#!/bin/sh\nsetsid "+exe+" 100000 </dev/null >/dev/null 2>&1 &\n"), 0o755)
	s := fakeService{name: name, exe: exe, pfile: filepath.Join(pfileDir, name+".pfile")}
	s.write(t, "process "+exe+"\nrestart_script "+script+"\nrestart_timeout 10\n"+extra)
	t.Cleanup(func() { killAll(exe) })
	return s
}

func (s fakeService) write(t *testing.T, body string) {
	t.Helper()
	if err := os.WriteFile(s.pfile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// killAll ends every process running exe (test clean-up).
func killAll(exe string) {
	tb, err := proc.NewTable("/proc", nil)
	if err != nil {
		return
	}
	ms, _ := tb.Scan(proc.Matcher{Exe: exe})
	for _, m := range ms {
		tb.Kill(context.Background(), m.IDs(), proc.KillOptions{Signal: 9})
	}
}

type pcheck struct {
	client  control.Client
	done    chan error
	stderr  interface{ String() string } // the daemon's slog lines
	cancel  context.CancelFunc
	stopped bool
}

// stop ends this pcheck (SIGTERM's clean stop) and checks it ended well.
func (p *pcheck) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	p.cancel()
	if err := <-p.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func startPcheck(t *testing.T, pfileDir string, edit ...func(*Config)) *pcheck {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	log, stderr := testLogger(t)
	p := &pcheck{client: control.Client{Path: filepath.Join(dir, "pcheck.sock")}, done: make(chan error, 1), stderr: stderr, cancel: cancel}
	cfg := Config{Paths: []string{pfileDir}, Watcher: "auto", ControlSocket: p.client.Path, StateDir: dir, RebootThreshold: 3, RebootWindow: time.Hour}
	for _, e := range edit {
		e(&cfg)
	}
	go func() { p.done <- Run(ctx, cfg, log) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// waitStatus polls padmin status until cond holds for it.
func (p *pcheck) waitStatus(t *testing.T, what string, cond func(map[string]control.ServiceStatus) bool) map[string]control.ServiceStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got map[string]control.ServiceStatus
		if list, err := p.client.Status(context.Background(), ""); err == nil {
			got = map[string]control.ServiceStatus{}
			for _, s := range list {
				got[s.Name] = s
			}
			if cond(got) {
				return got
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("pcheck ended while waiting for %s: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func upWith(name string, pid int) func(map[string]control.ServiceStatus) bool {
	return func(m map[string]control.ServiceStatus) bool {
		s, ok := m[name]
		return ok && s.State == "Up" && len(s.PIDs) == 1 && (pid == 0 || s.PIDs[0] == pid)
	}
}

func TestReload(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	a := newFakeService(t, work, pfiles, "alpha", "")
	p := startPcheck(t, pfiles)
	pidA := p.waitStatus(t, "alpha started", upWith("alpha", 0))["alpha"].PIDs[0]

	// A reload with an error is refused whole: nothing changes.
	bad := filepath.Join(pfiles, "beta.pfile")
	os.WriteFile(bad, []byte("process /usr/bin/true\nrestart_script /bin/true\nretry_count many\n"), 0o644)
	a.write(t, "process "+a.exe+"\nrestart_script /bin/true\nretry_count 7\n")
	err := p.client.Reload(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "beta.pfile:3:") {
		t.Fatalf("reload error %v, want beta.pfile:3 named", err)
	}
	if rules := rulesOf(t, p, "alpha"); strings.Contains(rules, `"retry_count":7`) {
		t.Fatalf("a refused reload changed alpha's rules: %s", rules)
	}
	p.waitStatus(t, "alpha untouched, no beta", func(m map[string]control.ServiceStatus) bool {
		_, hasB := m["beta"]
		return upWith("alpha", pidA)(m) && !hasB
	})

	// Fixed: beta is added and started; alpha's change takes effect
	// without a restart.
	os.Remove(bad)
	b := newFakeService(t, work, pfiles, "beta", "")
	if err := p.client.Reload(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	st := p.waitStatus(t, "beta started, alpha kept", func(m map[string]control.ServiceStatus) bool {
		return upWith("alpha", pidA)(m) && upWith("beta", 0)(m)
	})
	if rules := rulesOf(t, p, "alpha"); !strings.Contains(rules, `"retry_count":7`) {
		t.Fatalf("alpha's new rules not in effect: %s", rules)
	}

	// Removed: beta is no longer watched, its process left running.
	pidB := st["beta"].PIDs[0]
	os.Remove(b.pfile)
	if err := p.client.Reload(context.Background(), "beta"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "beta gone", func(m map[string]control.ServiceStatus) bool { _, ok := m["beta"]; return !ok })
	if _, state, err := proc.Identify("/proc", pidB); err != nil || state.Dead() {
		t.Fatalf("beta's process %d did not survive its unwatching: %v %v", pidB, state, err)
	}

	// A service stopped by padmin stays stopped across a change.
	if err := p.client.Stop(context.Background(), "alpha"); err != nil {
		t.Fatal(err)
	}
	a.write(t, "process "+a.exe+"\nrestart_script /bin/true\nretry_count 8\n")
	if err := p.client.Reload(context.Background(), "alpha"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "alpha paused with new rules", func(m map[string]control.ServiceStatus) bool {
		return m["alpha"].State == "Paused" && strings.Contains(rulesOf(t, p, "alpha"), `"retry_count":8`)
	})
}

func rulesOf(t *testing.T, p *pcheck, name string) string {
	t.Helper()
	raw, err := p.client.Rules(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(raw)), "")
}

// Two pfiles that match the same process both hear of its death, and one
// of them being stopped does not blind the other.
func TestSharedProcessDeathReachesEveryService(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	a := newFakeService(t, work, pfiles, "alpha", "start_on_load no\n")
	twin := filepath.Join(pfiles, "twin.pfile")
	if err := os.WriteFile(twin, []byte("process "+a.exe+"\nrestart_script /bin/true\nstart_on_load no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(a.exe, "100000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	p := startPcheck(t, pfiles)
	both := func(state string) func(map[string]control.ServiceStatus) bool {
		return func(m map[string]control.ServiceStatus) bool {
			return m["alpha"].State == state && m["twin"].State == state
		}
	}
	p.waitStatus(t, "both adopt the process", both("Up"))
	// A stopped twin must not take the watch away from alpha.
	if err := p.client.Stop(context.Background(), "twin"); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Start(context.Background(), "twin"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "both watching again", both("Up"))
	old := cmd.Process.Pid
	cmd.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range []string{"alpha", "twin"} {
		want := fmt.Sprintf("Process ['%s',pid=%d] Down", n, old)
		for !strings.Contains(p.stderr.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s", want, p.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
