// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// nobody is a real uid other than root's that owns the "unsafe" files.
const nobody = 65534

// trustRig is one service whose pfile and restart script live in
// directories of their own, so that each can be made unsafe in turn. Its
// restart script records every run in ran before starting the sleeper; the
// service is not running and start_on_load is yes, so a pcheck that loads
// it runs the script at once.
type trustRig struct {
	sc                  *scene
	svc                 *sleeper
	pfileDir, scriptDir string
	pfile, script, ran  string
}

func newTrustRig(t *testing.T) *trustRig {
	t.Helper()
	sc := newScene(t)
	r := &trustRig{sc: sc, pfileDir: filepath.Join(sc.dir, "pfile.d"), scriptDir: filepath.Join(sc.dir, "scripts"), ran: filepath.Join(sc.dir, "script-ran")}
	for _, d := range []string{r.pfileDir, r.scriptDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.svc = newSleeper(t, sc.dir, "trusted")
	r.script = filepath.Join(r.scriptDir, "trusted.restart")
	writeFile(t, r.script, fmt.Sprintf("#!/bin/sh\necho ran >>%s\nexec setsid -f %s 100000 </dev/null >/dev/null 2>&1\n", r.ran, r.svc.exe), 0o755)
	r.pfile = r.svc.writePfile(t, r.pfileDir, r.script, "restart_timeout 10", "retry_interval 0")
	return r
}

// scriptRan reports whether the restart script has run.
func (r *trustRig) scriptRan(t *testing.T) bool {
	t.Helper()
	_, err := os.Stat(r.ran)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// check runs `padmin check` on the pfile directory, with extra flags.
func (r *trustRig) check(t *testing.T, flags ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin.padmin, append(append([]string{"check"}, flags...), r.pfileDir)...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("padmin check: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chownNobody(t *testing.T, path string) {
	t.Helper()
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

// TestTrustRuleRefusesUnsafeFiles: each way another user could get root
// through pcheck refuses the start of the real pcheck, naming the file
// and the reason, before any script runs; padmin check refuses it the
// same way. Untouched, the same files load and the script runs.
func TestTrustRuleRefusesUnsafeFiles(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	cases := []struct {
		name string
		make func(t *testing.T, r *trustRig) // makes the rig unsafe
		want func(r *trustRig) string        // the refusal's line
	}{
		{"world-writable pfile",
			func(t *testing.T, r *trustRig) { chmod(t, r.pfile, 0o666) },
			func(r *trustRig) string {
				return r.pfile + ": writable by others (mode 0666); pcheck reads it as rules"
			}},
		{"pfile of another user",
			func(t *testing.T, r *trustRig) { chownNobody(t, r.pfile) },
			func(r *trustRig) string {
				return r.pfile + ": owned by uid 65534 (nobody), not root; pcheck reads it as rules"
			}},
		{"pfile directory anyone can write",
			func(t *testing.T, r *trustRig) { chmod(t, r.pfileDir, 0o777) },
			func(r *trustRig) string {
				return r.pfileDir + ": writable by others (mode 0777); pcheck reads the pfiles in it as rules"
			}},
		{"world-writable restart script",
			func(t *testing.T, r *trustRig) { chmod(t, r.script, 0o777) },
			func(r *trustRig) string {
				return r.script + ": writable by others (mode 0777); pcheck runs it as root"
			}},
		{"restart script of another user",
			func(t *testing.T, r *trustRig) { chownNobody(t, r.script) },
			func(r *trustRig) string {
				return r.script + ": owned by uid 65534 (nobody), not root; pcheck runs it as root"
			}},
		{"script in a world-writable directory without the sticky bit",
			func(t *testing.T, r *trustRig) { chmod(t, r.scriptDir, 0o777) },
			func(r *trustRig) string {
				return r.scriptDir + ": writable by others (mode 0777); whoever can write it can replace " + r.script + ", which pcheck runs as root"
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			expectRefusedLoad(t, c.make, c.want)
		})
	}

	// Safe, with the script in a sticky directory of root's (as /tmp):
	// others can add files there, but not replace root's.
	t.Run("safe", func(t *testing.T) {
		t.Parallel()
		r := newTrustRig(t)
		chmod(t, r.scriptDir, 0o777|os.ModeSticky)
		if code, out := r.check(t); code != 0 || out != "OK trusted\n" {
			t.Errorf("padmin check of safe files: exit %d, printed:\n%s", code, out)
		}
		p := startPcheckFlags(t, r.sc, nil, r.pfileDir)
		p.waitState(t, r.svc.name, "Up")
		if !r.scriptRan(t) {
			t.Error("the service is Up but its restart script never ran")
		}
	})
}

// expectRefusedLoad makes a trust rig unsafe with unsafe and checks that
// pcheck refuses to load it (exit 1, the line want gives, no control
// socket, no script run) and that padmin check says the same.
func expectRefusedLoad(t *testing.T, unsafe func(*testing.T, *trustRig), want func(*trustRig) string) {
	t.Helper()
	r := newTrustRig(t)
	unsafe(t, r)
	wantLine := want(r)

	p := startPcheckFlags(t, r.sc, nil, r.pfileDir)
	status, err := p.waitExit(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if status != 1 {
		t.Errorf("pcheck exit status %d, want 1 (a refused load)", status)
	}
	if !strings.Contains(p.stderr.String(), wantLine) {
		t.Errorf("pcheck's stderr:\n%s\nwant the line %q", p.stderr.String(), wantLine)
	}
	if _, err := os.Lstat(p.control); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused pcheck opened its control socket: %v", err)
	}
	if r.scriptRan(t) {
		t.Error("the restart script ran although the load was refused")
	}

	code, out := r.check(t)
	if code != 1 || !strings.Contains(out, wantLine+"\n") || strings.Contains(out, "OK ") {
		t.Errorf("padmin check: exit %d, printed:\n%s\nwant exit 1, the line %q and no OK", code, out, wantLine)
	}
	if r.scriptRan(t) {
		t.Error("padmin check ran the restart script")
	}
}

// TestTrustRuleOnReload: a script made unsafe after the start refuses
// the reload (padmin reload exits 1 with the reason) and the running rules
// stay. With --unsafe-skip-trust-check the same files load, and each load
// and reload warns.
func TestTrustRuleOnReload(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		r := newTrustRig(t)
		p := startPcheckFlags(t, r.sc, nil, r.pfileDir)
		p.waitState(t, r.svc.name, "Up")
		before := p.padminOK(t, "rules", "--json", r.svc.name).out

		chmod(t, r.script, 0o775)
		r.svc.writePfile(t, r.pfileDir, r.script, "restart_timeout 20", "retry_interval 0")
		res := p.runPadmin(t, "reload")
		want := r.script + ": writable by group (mode 0775); pcheck runs it as root"
		if res.code != 1 || !strings.Contains(res.out, want) {
			t.Errorf("padmin reload: exit %d, printed:\n%s\nwant exit 1 and %q", res.code, res.out, want)
		}
		if after := p.padminOK(t, "rules", "--json", r.svc.name).out; after != before {
			t.Errorf("a refused reload changed the rules:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("relaxed", func(t *testing.T) {
		t.Parallel()
		r := newTrustRig(t)
		chmod(t, r.script, 0o777)
		problem := r.script + ": writable by others (mode 0777); pcheck runs it as root"

		code, out := r.check(t, "--unsafe-skip-trust-check")
		if code != 0 || !strings.Contains(out, "trust rule is off") || !strings.Contains(out, problem) || !strings.Contains(out, "OK trusted\n") {
			t.Errorf("padmin check --unsafe-skip-trust-check: exit %d, printed:\n%s\nwant exit 0, a warning with %q, OK", code, out, problem)
		}

		p := startPcheckFlags(t, r.sc, []string{"--unsafe-skip-trust-check"}, r.pfileDir)
		p.waitState(t, r.svc.name, "Up")
		if !r.scriptRan(t) {
			t.Error("the service is Up but its restart script never ran")
		}
		if n := warnings(p, problem); n != 1 {
			t.Errorf("%d warnings naming %q after the start, want 1:\n%s", n, problem, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), `"msg":"trust rule off: run anyway"`) {
			t.Errorf("the script ran with no warning that the rule refused it just before:\n%s", p.stderr.String())
		}
		p.padminOK(t, "reload")
		if n := warnings(p, problem); n != 2 {
			t.Errorf("%d warnings naming %q after a reload, want 2:\n%s", n, problem, p.stderr.String())
		}
		if n := strings.Count(p.stderr.String(), "the trust rule is off"); n != 2 {
			t.Errorf("%d warnings that the rule is off after a start and a reload, want 2", n)
		}
	})
}

// warnings counts pcheck's stderr records that warn, at a load, about
// problem (each run warns too, apart: "trust rule off: run anyway").
func warnings(p *pcheckRun, problem string) int {
	n := 0
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, `"msg":"trust rule off: accepted anyway"`) && strings.Contains(line, problem) {
			n++
		}
	}
	return n
}
