// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/trust"
)

const nobody = 65534

// asNobody runs a shell command as uid and gid 65534.
func asNobody(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %v: %s", nobody, err, out)
	}
}

// waitLine waits for a log line that starts with prefix.
func (r *recorder) waitPrefix(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, l := range r.all() {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("no line %q... in %q", prefix, r.all())
		}
	}
}

// Issue 21 #2: a restart script that passed the trust rule at load, in
// root's sticky directory, removed (a /tmp cleaner) and created anew by
// uid 65534, is never run as root: the attempt fails with its own syslog
// line, and the script's first line never ran.
func TestScriptReplacedAfterLoadNeverRunsAsRoot(t *testing.T) {
	testpriv.Root(t)
	sticky, err := os.MkdirTemp("", "pwatch-sticky-") // in /tmp, which uid 65534 can reach
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sticky) })
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(sticky, "ran-as")
	var script string
	h := newHarness(t, "ok", func(cfg *pfile.Service) {
		// Root's own script, which brings the service up.
		script = filepath.Join(sticky, "web.restart")
		marker, _ := os.ReadFile(cfg.RestartScript[0])
		if err := os.WriteFile(script, marker, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg.RestartScript = []string{script}
		cfg.RetryCount = 1
	})
	tc := trust.New()
	tc.Program(script)
	if ps := tc.Take(); len(ps) > 0 {
		t.Fatalf("root's script in root's sticky directory fails the rule at load: %v", ps)
	}
	h.running(t)
	h.run(t)
	h.waitState(t, Up)

	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	asNobody(t, "printf '#!/bin/sh\\nid -u > "+ran+"\\ntouch "+h.procs.marker+"\\n' > "+script+" && chmod 755 "+script)
	h.kill(9)
	line := h.log.waitPrefix(t, "Program refused ('web',"+script+"): ")
	if want := script + ": owned by uid 65534 (nobody), not root; pcheck runs it as root; not run"; !strings.HasSuffix(line, want) {
		t.Errorf("refusal %q does not end %q", line, want)
	}
	h.log.waitLines(t, 0, "Try to restart ('web')", line, "Set pid fail ('web')")
	h.waitState(t, RetryOver)
	if b, err := os.ReadFile(ran); err == nil {
		t.Fatalf("uid 65534's script ran, as uid %s", strings.TrimSpace(string(b)))
	}
}
