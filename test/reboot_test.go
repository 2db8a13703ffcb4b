// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// Automatic reboot through the real binaries. The reboot command is always
// a script that records its calls (rebootRig), and a reboot is simulated
// by stopping pcheck and starting a new one on the same state directory.

// loopService is a service that never comes back: its restart script
// fails, no retry, then retry over with reboot. At every boot pcheck finds
// it not running, tries once (its first start, which retry_count does not
// count), and asks for a reboot.
func loopService(t *testing.T, sc *scene, name string) string {
	t.Helper()
	s := newSleeper(t, sc.dir, name)
	return s.writePfile(t, sc.dir, "/bin/false",
		"retry_count 0", "retry_interval 0", "restart_timeout 5", "retry_over_action reboot")
}

// bootFails checks one boot's lines: the service is tried once, fails,
// and its retries are over with action reboot; then whatever comes next.
func bootFails(t *testing.T, p *pcheckRun, name string, next ...string) {
	t.Helper()
	p.expectLines(t, append([]string{tryRestart(name), setPidFail(name), retryOver(name, "reboot")}, next...)...)
}

// TestRebootLoop: with --reboot-threshold 2, two boots reboot, the third
// does not (Reboot threshold reached, the service left RetryOver); padmin
// reboot-count shows 2 of 2, --reset clears it and the next boot reboots
// again.
func TestRebootLoop(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "loop"
	sc := newScene(t)
	rig := newRebootRig(t, sc)
	pf := loopService(t, sc, name)

	for boot := 1; boot <= 2; boot++ {
		p := rig.boot(t, 2, 3600, pf)
		bootFails(t, p, name)
		rig.waitCount(t, boot)
		rig.reboot(t, p)
	}

	// The threshold line is logged once the guard has decided: had it
	// allowed a third reboot, the call would be recorded by now.
	p := rig.boot(t, 2, 3600, pf)
	bootFails(t, p, name, rebootThresholdReached(name))
	rig.expectCount(t, 2)
	p.waitState(t, name, "RetryOver")
	if got, want := p.padminOK(t, "reboot-count").out, "2 of 2 automatic reboots within 3600s\n"; got != want {
		t.Fatalf("padmin reboot-count printed %q, want %q", got, want)
	}
	if got, want := p.padminOK(t, "reboot-count", "--reset").out, "0 of 2 automatic reboots within 3600s\n"; got != want {
		t.Fatalf("padmin reboot-count --reset printed %q, want %q", got, want)
	}
	rig.expectCount(t, 2)
	rig.reboot(t, p)

	p = rig.boot(t, 2, 3600, pf)
	bootFails(t, p, name)
	rig.waitCount(t, 3)
	if got, want := p.padminOK(t, "reboot-count").out, "1 of 2 automatic reboots within 3600s\n"; got != want {
		t.Fatalf("after the reset and one more reboot padmin reboot-count printed %q, want %q", got, want)
	}
}

// TestRebootWindow: reboots older than --reboot-window no longer count:
// after two reboots with a threshold of 2, once the count has fallen to 0
// the next boot reboots again.
func TestRebootWindow(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "window"
	const window = 2 // seconds
	sc := newScene(t)
	rig := newRebootRig(t, sc)
	pf := loopService(t, sc, name)

	var p *pcheckRun
	for boot := 1; boot <= 2; boot++ {
		if p != nil {
			rig.reboot(t, p)
		}
		p = rig.boot(t, 2, window, pf)
		bootFails(t, p, name)
		rig.waitCount(t, boot)
	}
	want := fmt.Sprintf("0 of 2 automatic reboots within %ds\n", window)
	pollUntil(t, fmt.Sprintf("saw padmin reboot-count print %q", want), func() bool {
		return p.padminOK(t, "reboot-count").out == want
	})
	rig.reboot(t, p)

	p = rig.boot(t, 2, window, pf)
	bootFails(t, p, name)
	rig.waitCount(t, 3)
}

// TestRecoveryTimeoutReboots: with recovery_timeout, a service not back in
// time reboots the node although it has retries left: no Retry over line,
// only attempts that failed.
func TestRecoveryTimeoutReboots(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "slow"
	sc := newScene(t)
	rig := newRebootRig(t, sc)
	s := newSleeper(t, sc.dir, name)
	pf := s.writePfile(t, sc.dir, "/bin/false",
		"retry_count 100", "retry_interval 1", "recovery_timeout 3", "retry_over_action reboot")

	p := rig.boot(t, 3, 3600, pf)
	rig.waitCount(t, 1)
	p.waitState(t, name, "RetryOver")
	// padmin's line is sent after the reboot was recorded, and so after
	// every line pcheck sent before it: with it in, pcheck's lines up to
	// the reboot are all in too.
	sentinel := p.padminOK(t, "reload", name)
	expectPadminLine(t, sc.syslog, sentinel.pid, command("reload", name))
	lines := p.allLines()
	attempts := 0
	for i, l := range lines {
		want := tryRestart(name)
		if i%2 == 1 {
			want = setPidFail(name)
		} else {
			attempts++
		}
		if l != want {
			t.Fatalf("pcheck logged %q, want only %q and %q in turn", lines, tryRestart(name), setPidFail(name))
		}
	}
	// One attempt at once, then one a second (retry_interval) until the
	// 3 s of recovery_timeout are over.
	if attempts < 1 || attempts > 4 {
		t.Fatalf("%d restart attempts before the reboot, want 1 to 4: %q", attempts, lines)
	}
	if got, want := p.padminOK(t, "reboot-count").out, "1 of 3 automatic reboots within 3600s\n"; got != want {
		t.Fatalf("padmin reboot-count printed %q, want %q", got, want)
	}
	rig.expectCount(t, 1)
}

// TestRebootCorruptState: a state file the guard cannot read or understand
// is reported on stderr and taken as the safe side: no reboot, pcheck goes
// on (padmin answers), the file is left as found. padmin reboot-count
// reports it; --reset rewrites it and reboots work again.
func TestRebootCorruptState(t *testing.T) {
	testpriv.Root(t)
	cases := []struct {
		name      string
		corrupt   func(t *testing.T, path string)
		resetable bool
	}{
		{"garbage", func(t *testing.T, path string) {
			writeFile(t, path, "\x00\x17 not the guard's JSON {{{\n", 0o600)
		}, true},
		{"future-version", func(t *testing.T, path string) {
			writeFile(t, path, `{"version": 99, "reboots": []}`+"\n", 0o600)
		}, true},
		// Unreadable: a directory in its place (root reads any file).
		{"unreadable", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const name = "guarded"
			sc := newScene(t)
			rig := newRebootRig(t, sc)
			pf := loopService(t, sc, name)
			if err := os.MkdirAll(rig.stateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.corrupt(t, rig.statePath())
			before := readState(t, rig.statePath())

			p := rig.boot(t, 3, 3600, pf)
			bootFails(t, p, name)
			// Logged once the guard has refused: a reboot would have been
			// recorded by now.
			p.waitStderr(t, "ERROR", rig.statePath())
			rig.expectCount(t, 0)
			p.waitState(t, name, "RetryOver")
			if after := readState(t, rig.statePath()); after != before {
				t.Fatalf("the refused reboot changed the state file: %q, was %q", after, before)
			}
			r := p.runPadmin(t, "reboot-count")
			if r.code != 1 || !strings.Contains(r.out, rig.statePath()) {
				t.Fatalf("padmin reboot-count on a bad state file: exit %d, printed %q; want exit 1 and an error naming %s", r.code, r.out, rig.statePath())
			}
			if !tc.resetable {
				return
			}
			if got, want := p.padminOK(t, "reboot-count", "--reset").out, "0 of 3 automatic reboots within 3600s\n"; got != want {
				t.Fatalf("padmin reboot-count --reset printed %q, want %q", got, want)
			}
			rig.reboot(t, p)
			p = rig.boot(t, 3, 3600, pf)
			bootFails(t, p, name)
			rig.waitCount(t, 1)
		})
	}
}

// readState is the guard's state file as found: its content, or what it is
// when it cannot be read.
func readState(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		fi, serr := os.Stat(path)
		if serr != nil {
			t.Fatal(serr)
		}
		return fmt.Sprintf("unreadable %s", fi.Mode())
	}
	return string(data)
}
