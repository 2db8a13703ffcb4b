// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/opstate"
)

// countingScript is a restart script that fails and counts its runs.
func countingScript(t *testing.T, dir, name string) (script, runs string) {
	t.Helper()
	runs = filepath.Join(dir, name+".runs")
	script = filepath.Join(dir, name+".fail")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$PWATCH_ATTEMPT\" >> "+runs+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, runs
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func stateIs(name, state string) func(map[string]control.ServiceStatus) bool {
	return func(m map[string]control.ServiceStatus) bool { return m[name].State == state }
}

func inStateDir(dir string) func(*Config) { return func(c *Config) { c.StateDir = dir } }

// Issue 13 #4: a pcheck restarted (systemd, an upgrade, its watchdog)
// leaves a service stopped with padmin stopped, and one whose retries are
// over without fresh retries; padmin start clears both.
func TestOperatorStateSurvivesAPcheckRestart(t *testing.T) {
	testpriv.Root(t)
	work, pfiles, state := t.TempDir(), t.TempDir(), t.TempDir()
	a := newFakeService(t, work, pfiles, "alpha", "")
	failing, runs := countingScript(t, work, "beta")
	b := newFakeService(t, work, pfiles, "beta", "")
	b.write(t, "process "+b.exe+"\nrestart_script "+failing+"\nretry_count 1\n")

	p := startPcheck(t, pfiles, inStateDir(state))
	p.waitStatus(t, "alpha up, beta retried over", func(m map[string]control.ServiceStatus) bool {
		return upWith("alpha", 0)(m) && m["beta"].State == "RetryOver"
	})
	if err := p.client.Stop(context.Background(), "alpha"); err != nil {
		t.Fatal(err)
	}
	killAll(a.exe) // down while stopped: a new pcheck must not start it
	p.stop(t)
	ran := lines(t, runs)

	p = startPcheck(t, pfiles, inStateDir(state))
	// The first answer comes once every supervisor is set up.
	st := p.waitStatus(t, "any status", func(map[string]control.ServiceStatus) bool { return true })
	if st["alpha"].State != "Paused" || st["beta"].State != "RetryOver" {
		t.Fatalf("after a pcheck restart: alpha %s, beta %s; want Paused and RetryOver", st["alpha"].State, st["beta"].State)
	}
	// start clears it: alpha runs again, and a later pcheck leaves it be.
	if err := p.client.Start(context.Background(), "alpha"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "alpha started", upWith("alpha", 0))
	if got := lines(t, runs); got != ran {
		t.Fatalf("beta's restart script ran %d more times across the restart", got-ran)
	}
	p.stop(t)
	store, err := opstate.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := store.Get("alpha"); ok {
		t.Fatal("padmin start left alpha's kept state")
	}
	if e, ok := store.Get("beta"); !ok || e.State != opstate.RetryOver {
		t.Fatalf("beta's kept state: %+v %v", e, ok)
	}
}

func TestCorruptStateFileRefusesTheStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "web.pfile")
	if err := os.WriteFile(p, []byte("process /usr/bin/sleep\nrestart_script /bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, opstate.File)
	if err := os.WriteFile(bad, []byte(`{"version":1,"services":{"web":`), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	err := Run(context.Background(), Config{Paths: []string{p}, Watcher: "proc", ControlSocket: filepath.Join(dir, "sock"), StateDir: dir, RebootThreshold: 3, RebootWindow: time.Hour}, log)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Run with a corrupt state file: %v, want an error naming %s", err, bad)
	}
}

// Issue 13 #8: a reload that only adds a comment keeps the supervisor (a
// retried-over service is not revived); one that really changes the
// service in the middle of its recovery carries its attempts over.
func TestReloadKeepsWhatItShould(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	failing, runs := countingScript(t, work, "gamma")
	g := newFakeService(t, work, pfiles, "gamma", "")
	// A block: its line number is what a comment moves.
	body := "process " + g.exe + "\nrestart_script " + failing + "\nretry_count 1\n" +
		"_bi_socket{\nPS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-:60:0:2:600:1\nPS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:0:0\n}\n"
	g.write(t, body)
	p := startPcheck(t, pfiles)
	p.waitStatus(t, "gamma retried over", stateIs("gamma", "RetryOver"))

	g.write(t, "# a comment changes nothing\n"+body)
	if err := p.client.Reload(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	st := p.waitStatus(t, "any status", func(map[string]control.ServiceStatus) bool { return true })["gamma"]
	if st.State != "RetryOver" || st.LastEvent == nil || !strings.HasPrefix(st.LastEvent.Text, "Retry over") {
		t.Fatalf("after a comment-only reload: %+v (a new supervisor)", st)
	}

	// Mid-recovery: 3 attempts within grace, 2 s apart, and a real change
	// at every pause. The script runs a first start and 3 restarts, no more.
	d := newFakeService(t, work, pfiles, "delta", "")
	failingD, runsD := countingScript(t, work, "delta")
	bodyD := func(kill int) string {
		return "process " + d.exe + "\nrestart_script " + failingD + "\nretry_count 3\nretry_interval 2\nkill_timeout " + strconv.Itoa(kill) + "\n"
	}
	d.write(t, bodyD(1))
	if err := p.client.Reload(context.Background(), "delta"); err != nil {
		t.Fatal(err)
	}
	for kill := 2; kill <= 4; kill++ {
		want := kill - 1 // restarts within grace before this reload
		p.waitStatus(t, "delta pausing after its attempts", func(m map[string]control.ServiceStatus) bool {
			s := m["delta"]
			return s.NextAttemptIn != nil && s.Restarts >= want-1 && lines(t, runsD) >= want
		})
		before := p.waitStatus(t, "any", func(map[string]control.ServiceStatus) bool { return true })["delta"].Restarts
		d.write(t, bodyD(kill))
		if err := p.client.Reload(context.Background(), "delta"); err != nil {
			t.Fatal(err)
		}
		after := p.waitStatus(t, "any", func(map[string]control.ServiceStatus) bool { return true })["delta"].Restarts
		if after < before {
			t.Fatalf("reload %d: restarts within grace %d -> %d: the attempt history was dropped", kill-1, before, after)
		}
	}
	p.waitStatus(t, "delta retried over", stateIs("delta", "RetryOver"))
	// padmin rules shows the policy keys, after defaults.
	if rules := rulesOf(t, p, "delta"); !strings.Contains(rules, `"retry_interval":2,"retry_backoff":1,"retry_interval_max":null,"stable_uptime":60,"rearm_after":null`) {
		t.Fatalf("padmin rules delta: %s", rules)
	}
	if got := lines(t, runsD); got != 4 {
		b, _ := os.ReadFile(runsD)
		t.Fatalf("delta's script ran %d times (PWATCH_ATTEMPT %q), want 4: a first start and retry_count 3", got, b)
	}
	if got := lines(t, runs); got != 2 {
		t.Fatalf("gamma's script ran %d times, want 2 (first start and one restart)", got)
	}
}
