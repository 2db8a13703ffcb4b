// SPDX-License-Identifier: Apache-2.0

package e2e

// Tests of the OCF resource agent scripts/ocf/pwatch: its meta-data against
// the OCF DTD, Debian's ocf-tester, the exit codes of each action run by
// hand, and a live single-node Pacemaker cluster (scripts/ocf/cluster_test.sh).

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// OCF exit codes (the OCF resource agent API).
const (
	ocfSuccess       = 0
	ocfErrGeneric    = 1
	ocfErrPerm       = 4
	ocfErrInstalled  = 5
	ocfErrConfigured = 6
	ocfNotRunning    = 7
)

const ocfRoot = "/usr/lib/ocf"

// agentPath is the agent in this tree.
func agentPath() string { return filepath.Join(repoRoot(), "scripts", "ocf", "pwatch") }

// needTools skips (or fails, see testpriv) a test whose programs are not
// installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testpriv.Unavailable(t, tool+" is not installed (scripts/install-deps.sh installs it)")
		}
	}
	if _, err := os.Stat(filepath.Join(ocfRoot, "lib", "heartbeat", "ocf-shellfuncs")); err != nil {
		testpriv.Unavailable(t, "resource-agents is not installed (no ocf-shellfuncs): scripts/install-deps.sh")
	}
}

// raMetaData is the part of an agent's meta-data these tests read.
type raMetaData struct {
	Name       string `xml:"name,attr"`
	Parameters []struct {
		Name    string `xml:"name,attr"`
		Content struct {
			Type    string `xml:"type,attr"`
			Default string `xml:"default,attr"`
		} `xml:"content"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name string `xml:"name,attr"`
	} `xml:"actions>action"`
}

func TestOCFMetaData(t *testing.T) {
	needTools(t, "xmllint")
	const dtdDir = "/usr/share/resource-agents"
	if _, err := os.Stat(filepath.Join(dtdDir, "ra-api-1.dtd")); err != nil {
		testpriv.Unavailable(t, "no ra-api-1.dtd (package resource-agents)")
	}
	cmd := exec.Command(agentPath(), "meta-data")
	cmd.Env = append(os.Environ(), "OCF_ROOT="+ocfRoot)
	meta, err := cmd.Output()
	if err != nil {
		t.Fatalf("meta-data: %v", err)
	}
	// The DOCTYPE names ra-api-1.dtd relative to the document: run where it is.
	lint := exec.Command("xmllint", "--noout", "--valid", "-")
	lint.Dir = dtdDir
	lint.Stdin = bytes.NewReader(meta)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Fatalf("meta-data is not valid against ra-api-1.dtd: %v\n%s", err, out)
	}

	var md raMetaData
	if err := xml.Unmarshal(meta, &md); err != nil {
		t.Fatal(err)
	}
	if md.Name != "pwatch" {
		t.Errorf("resource-agent name %q, want pwatch", md.Name)
	}
	params := map[string]string{}
	for _, p := range md.Parameters {
		params[p.Name] = p.Content.Type + " " + p.Content.Default
	}
	for name, want := range map[string]string{
		"pfile_dir":        "string /etc/pwatch/pfile.d",
		"control_socket":   "string /run/pwatch/pcheck.sock",
		"state_dir":        "string /var/lib/pwatch",
		"pcheck_flags":     "string ",
		"retry_over_fails": "boolean false",
	} {
		if got, ok := params[name]; !ok || got != want {
			t.Errorf("parameter %s: %q, want %q", name, got, want)
		}
	}
	var actions []string
	for _, a := range md.Actions {
		actions = append(actions, a.Name)
	}
	for _, want := range []string{"start", "stop", "monitor", "validate-all", "meta-data"} {
		if !slices.Contains(actions, want) {
			t.Errorf("no action %s in %v", want, actions)
		}
	}
}

// agentRig is a pfile directory with one service, the demo server on a
// loopback port, whose restart script fails while the file broken exists;
// and the agent's environment for a resource watching it.
type agentRig struct {
	dir, instance, rsctmp, server string
	env                           []string
}

func newAgentRig(t *testing.T, action string, params ...string) *agentRig {
	t.Helper()
	dir := shortDir(t)
	r := &agentRig{
		dir:      dir,
		instance: fmt.Sprintf("pwtest-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
		rsctmp:   filepath.Join(dir, "rsctmp"),
		server:   filepath.Join(dir, "demoserver"),
	}
	copyFile(t, filepath.Join(bin.dir, "demoserver"), r.server)
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "demo.restart"), fmt.Sprintf(`#!/bin/sh
[ ! -e %[1]s/broken ] || { echo broken; exit 1; }
setsid %[2]s -listen 127.0.0.1:%[3]d </dev/null >/dev/null 2>&1 &
`, dir, r.server, port), 0o755)
	if err := os.Mkdir(filepath.Join(dir, "pfile.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "pfile.d", "demo.pfile"), fmt.Sprintf(`process %s
restart_script %s/demo.restart
restart_timeout 5
retry_count 1
grace 300
retry_over_action %s
kill_timeout 2
`, r.server, dir, action), 0o644)
	r.env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "OCF_") || strings.HasPrefix(kv, "PWATCH_")
	}),
		"OCF_ROOT="+ocfRoot, "HA_RSCTMP="+r.rsctmp, "OCF_RESOURCE_INSTANCE="+r.instance,
		"OCF_RESKEY_CRM_meta_timeout=20000",
		"OCF_RESKEY_pfile_dir="+filepath.Join(dir, "pfile.d"),
		"OCF_RESKEY_control_socket="+filepath.Join(dir, "pcheck.sock"),
		"OCF_RESKEY_state_dir="+filepath.Join(dir, "state"),
		"OCF_RESKEY_logfile="+filepath.Join(dir, "pcheck.log"),
		"OCF_RESKEY_pcheck="+bin.pcheck,
		"OCF_RESKEY_padmin="+bin.padmin,
		"OCF_RESKEY_pcheck_flags=--syslog-socket "+filepath.Join(dir, "no-syslog")+" --reboot-command /bin/false",
	)
	for _, p := range params {
		r.env = append(r.env, "OCF_RESKEY_"+p)
	}
	t.Cleanup(func() {
		// Whatever the test left: pcheck through the agent, the server by
		// its private path.
		if rc, out := r.run(t, "stop"); rc != ocfSuccess {
			t.Errorf("cleanup: stop: %d %s", rc, out)
		}
		killExe(r.server)
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "pcheck.log"))
			t.Logf("pcheck.log:\n%s", log)
		}
	})
	return r
}

// run runs the agent's action; it returns the exit code and the output.
func (r *agentRig) run(t *testing.T, action string, env ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentPath(), action)
	cmd.Env = append(slices.Clone(r.env), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("agent %s: %v", action, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func (r *agentRig) expect(t *testing.T, action string, want int, env ...string) string {
	t.Helper()
	rc, out := r.run(t, action, env...)
	if rc != want {
		t.Fatalf("agent %s: exit %d, want %d; output:\n%s", action, rc, want, out)
	}
	return out
}

// pcheckPID is the pcheck the agent started, from its pid file.
func (r *agentRig) pcheckPID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.rsctmp, "pwatch-"+r.instance+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// serverPID waits for the one demo server of this rig and returns it.
func (r *agentRig) serverPID(t *testing.T) int {
	t.Helper()
	var pids []int
	pollUntil(t, "saw the demo server run", func() bool {
		pids = pidsWhere(runs(r.server))
		return len(pids) == 1
	})
	return pids[0]
}

// exitReason is the agent's ocf-exit-reason line.
func exitReason(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "ocf-exit-reason:"); ok {
			return s
		}
	}
	return ""
}

func TestOCFTester(t *testing.T) {
	testpriv.Root(t)
	needTools(t, "ocf-tester", "xmllint")
	r := newAgentRig(t, "exit")
	args := []string{"-n", r.instance}
	for _, kv := range r.env {
		if p, ok := strings.CutPrefix(kv, "OCF_RESKEY_"); ok && !strings.HasPrefix(p, "CRM_meta") {
			args = append(args, "-o", p)
		}
	}
	// ocf-tester runs meta-data as nobody, who may not reach this tree
	// (a checkout under /root): test a copy nobody can reach.
	if err := os.Chmod(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(r.dir, "pwatch")
	copyFile(t, agentPath(), agent)
	cmd := exec.Command("ocf-tester", append(args, agent)...)
	cmd.Env = append(slices.Clone(r.env), "OCF_ROOT="+ocfRoot)
	out, err := cmd.CombinedOutput()
	t.Logf("ocf-tester:\n%s", out)
	if err != nil || !strings.Contains(string(out), "passed all tests") {
		t.Fatalf("ocf-tester failed: %v", err)
	}
}

// TestOCFExitCodes runs each action by hand through a hand-over: OCF codes,
// never pcheck's own 3.
func TestOCFExitCodes(t *testing.T) {
	testpriv.Root(t)
	needTools(t)
	r := newAgentRig(t, "exit")

	r.expect(t, "monitor", ocfNotRunning)
	r.expect(t, "validate-all", ocfSuccess)
	r.expect(t, "start", ocfSuccess)
	first := r.pcheckPID(t)
	// start returns only once pcheck answers padmin.
	if rc := exec.Command(bin.padmin, "--control-socket", filepath.Join(r.dir, "pcheck.sock"), "status").Run(); rc != nil {
		t.Fatalf("padmin status after start: %v", rc)
	}
	r.expect(t, "monitor", ocfSuccess)
	r.expect(t, "start", ocfSuccess) // already started
	if pid := r.pcheckPID(t); pid != first {
		t.Fatalf("a second start replaced pcheck %d with %d", first, pid)
	}

	// The service fails for good: pcheck retries, then ends with status 3.
	// (start_on_load started it; start returns before that, once pcheck
	// answers.)
	server := r.serverPID(t)
	writeFile(t, filepath.Join(r.dir, "broken"), "", 0o644)
	kill9(t, server)
	waitGone(t, first)
	out := r.expect(t, "monitor", ocfErrGeneric)
	want := "pcheck ended with status 3: retry over of demo (action exit), handed over"
	if got := exitReason(out); got != want {
		t.Errorf("exit reason %q, want %q", got, want)
	}
	// A probe says the same: not running is only for a clean stop.
	r.expect(t, "monitor", ocfErrGeneric, "OCF_RESKEY_CRM_meta_interval=0")

	// The cluster's recovery: stop, then start again (the service works).
	r.expect(t, "stop", ocfSuccess)
	r.expect(t, "monitor", ocfNotRunning)
	if err := os.Remove(filepath.Join(r.dir, "broken")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "start", ocfSuccess)
	r.expect(t, "monitor", ocfSuccess)
	second := r.pcheckPID(t)
	server = r.serverPID(t)

	// A crash of pcheck itself is a failure too.
	kill9(t, second)
	waitGone(t, second)
	out = r.expect(t, "monitor", ocfErrGeneric)
	if got := exitReason(out); !strings.HasPrefix(got, "pcheck ended with status 137") {
		t.Errorf("exit reason %q, want pcheck ended with status 137 (SIGKILL)", got)
	}
	r.expect(t, "stop", ocfSuccess)
	r.expect(t, "monitor", ocfNotRunning)
	// The stops left the service alone.
	if !alive(server) {
		t.Errorf("the demo server (pid %d) did not outlive pcheck's stop", server)
	}
}

func TestOCFStopEndsPcheck(t *testing.T) {
	testpriv.Root(t)
	needTools(t)
	r := newAgentRig(t, "exit")
	r.expect(t, "start", ocfSuccess)
	pid := r.pcheckPID(t)
	server := r.serverPID(t)
	r.expect(t, "stop", ocfSuccess)
	if alive(pid) {
		t.Fatalf("pcheck (pid %d) runs after stop", pid)
	}
	if !alive(server) {
		t.Fatalf("stop took the service (pid %d) down", server)
	}
	r.expect(t, "stop", ocfSuccess) // stopping a stopped resource
	r.expect(t, "monitor", ocfNotRunning)
	if _, err := os.Stat(filepath.Join(r.dir, "pcheck.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after stop: %v", err)
	}
}

func TestOCFRetryOverFails(t *testing.T) {
	testpriv.Root(t)
	needTools(t)
	for _, tc := range []struct {
		fails string
		want  int
	}{{"false", ocfSuccess}, {"Yes", ocfErrGeneric}} {
		t.Run("retry_over_fails="+tc.fails, func(t *testing.T) {
			r := newAgentRig(t, "continue", "retry_over_fails="+tc.fails)
			r.expect(t, "start", ocfSuccess)
			server := r.serverPID(t)
			writeFile(t, filepath.Join(r.dir, "broken"), "", 0o644)
			kill9(t, server)
			pollUntil(t, "saw demo in RetryOver", func() bool {
				out, _ := exec.Command(bin.padmin, "--control-socket", filepath.Join(r.dir, "pcheck.sock"), "status", "demo").Output()
				return bytes.Contains(out, []byte(" RetryOver "))
			})
			out := r.expect(t, "monitor", tc.want)
			if tc.want != ocfSuccess {
				if got, want := exitReason(out), "service(s) in RetryOver: demo"; got != want {
					t.Errorf("exit reason %q, want %q", got, want)
				}
			}
		})
	}
}

func TestOCFValidate(t *testing.T) {
	testpriv.Root(t)
	needTools(t)
	r := newAgentRig(t, "exit")
	writeFile(t, filepath.Join(r.dir, "bad.pfile"), "process /bin/sleep\nretry_cont 3\n", 0o644)
	for _, tc := range []struct {
		name   string
		env    []string
		want   int
		reason string
	}{
		{"ok", nil, ocfSuccess, ""},
		{"pfile error", []string{"OCF_RESKEY_pfile_dir=" + filepath.Join(r.dir, "bad.pfile")}, ocfErrConfigured, "padmin check " + filepath.Join(r.dir, "bad.pfile") + ": "},
		{"no pfile dir", []string{"OCF_RESKEY_pfile_dir=" + filepath.Join(r.dir, "none")}, ocfErrInstalled, "pfile_dir " + filepath.Join(r.dir, "none") + " does not exist on this node"},
		{"relative path", []string{"OCF_RESKEY_state_dir=state"}, ocfErrConfigured, `state_dir="state": want an absolute path`},
		{"bad boolean", []string{"OCF_RESKEY_retry_over_fails=maybe"}, ocfErrConfigured, `retry_over_fails="maybe": want true or false`},
		{"no pcheck", []string{"OCF_RESKEY_pcheck=" + filepath.Join(r.dir, "no-pcheck")}, ocfErrInstalled, `pcheck binary "` + filepath.Join(r.dir, "no-pcheck") + `" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.expect(t, "validate-all", tc.want, tc.env...)
			if got := exitReason(out); !strings.HasPrefix(got, tc.reason) {
				t.Errorf("exit reason %q, want it to start with %q", got, tc.reason)
			}
		})
	}
	// start validates first, and starts nothing.
	r.expect(t, "start", ocfErrConfigured, "OCF_RESKEY_pfile_dir="+filepath.Join(r.dir, "bad.pfile"))
	r.expect(t, "monitor", ocfNotRunning)
	// Only root may run pcheck.
	if _, err := exec.LookPath("setpriv"); err == nil {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", agentPath(), "validate-all")
		cmd.Env = r.env
		out, _ := cmd.CombinedOutput()
		if rc := cmd.ProcessState.ExitCode(); rc != ocfErrPerm {
			t.Errorf("validate-all as nobody: %d, want %d\n%s", rc, ocfErrPerm, out)
		}
	}
}

// TestOCFCluster runs scripts/ocf/cluster_test.sh: corosync and Pacemaker
// on a private loopback, the pwatch resource, a hand-over, the recovery.
func TestOCFCluster(t *testing.T) {
	testpriv.Root(t)
	needTools(t, "corosync", "corosync-cfgtool", "pacemakerd", "crm_mon", "cibadmin",
		"crm_attribute", "crm_failcount", "crm", "unshare", "ip", "hostname")
	if _, err := os.Stat("/usr/lib/pacemaker/pacemaker-execd"); err != nil {
		testpriv.Unavailable(t, "pacemaker is not installed (no pacemaker-execd)")
	}
	if out, err := exec.Command("unshare", "--mount", "--net", "--uts", "--fork", "true").CombinedOutput(); err != nil {
		testpriv.Unavailable(t, fmt.Sprintf("cannot make mount, network and UTS namespaces: %v %s", err, out))
	}
	work := shortDir(t)
	// The scenario takes some 15 s; a stuck one is stopped with SIGTERM
	// (its teardown runs) well before the test binary's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--net", "--uts", "--fork", "--kill-child=SIGTERM",
		filepath.Join(repoRoot(), "scripts", "ocf", "cluster_test.sh"), bin.dir, work)
	// unshare --fork ignores SIGTERM: the script's own pid gets it, and its
	// teardown runs. Without one yet, killing unshare sends the script
	// SIGTERM (--kill-child).
	cmd.Cancel = func() error {
		if b, err := os.ReadFile(filepath.Join(work, "script.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 90 * time.Second
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "OCF_") || strings.HasPrefix(kv, "PWATCH_") || strings.HasPrefix(kv, "PCMK_") || strings.HasPrefix(kv, "CIB_")
	})
	out, err := cmd.CombinedOutput()
	t.Logf("cluster_test.sh:\n%s", out)
	if err != nil || !bytes.Contains(out, []byte("\nPASS\n")) {
		t.Fatalf("the cluster scenario failed: %v (ctx: %v)", err, ctx.Err())
	}
}

// A pcheck the resource did not start (pwatch.service on the same socket)
// makes start fail rather than run a second one.
func TestOCFStartRefusesForeignPcheck(t *testing.T) {
	testpriv.Root(t)
	needTools(t)
	r := newAgentRig(t, "exit")
	sock := filepath.Join(r.dir, "pcheck.sock")
	foreign := exec.Command(bin.pcheck, "run", "--control-socket", sock,
		"--state-dir", filepath.Join(r.dir, "foreign-state"), "--syslog-socket", filepath.Join(r.dir, "no-syslog"),
		"--reboot-command", "/bin/false", filepath.Join(r.dir, "pfile.d"))
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = foreign.Process.Signal(syscall.SIGTERM)
		_ = foreign.Wait()
	})
	pollUntil(t, "saw the foreign pcheck answer", func() bool {
		return exec.Command(bin.padmin, "--control-socket", sock, "status").Run() == nil
	})
	out := r.expect(t, "start", ocfErrGeneric)
	if got, want := exitReason(out), "another pcheck (not this resource's) answers on "+sock; !strings.HasPrefix(got, want) {
		t.Errorf("exit reason %q, want it to start with %q", got, want)
	}
	r.expect(t, "monitor", ocfNotRunning)
	if !alive(foreign.Process.Pid) {
		t.Error("the failed start touched the foreign pcheck")
	}
}

// A pcheck that ends at once (here: a flag it refuses, status 2) fails the start with
// its status, instead of leaving the cluster waiting for the timeout.
func TestOCFStartFailsWhenPcheckEnds(t *testing.T) {
	testpriv.Root(t)
	needTools(t)
	r := newAgentRig(t, "exit", "pcheck_flags=--watcher bogus")
	out := r.expect(t, "start", ocfErrGeneric)
	if got, want := exitReason(out), "pcheck ended with status 2 (see "+filepath.Join(r.dir, "pcheck.log")+") while starting"; got != want {
		t.Errorf("exit reason %q, want %q", got, want)
	}
	// Pacemaker stops a resource whose start failed; then it is not running.
	r.expect(t, "monitor", ocfErrGeneric)
	r.expect(t, "stop", ocfSuccess)
	r.expect(t, "monitor", ocfNotRunning)
}
