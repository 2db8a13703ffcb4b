// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// runWith starts pcheck on one harmless pfile with state dir state and
// returns Run's error (the start must be refused before anything runs).
func runWith(t *testing.T, state, restartScript string) error {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "web.pfile")
	if err := os.WriteFile(p, []byte("process /usr/bin/sleep\nrestart_script "+restartScript+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, Config{Paths: []string{p}, Watcher: "proc", ControlSocket: filepath.Join(dir, "sock"), StateDir: state, RebootThreshold: 3, RebootWindow: time.Hour}, log)
	if _, statErr := os.Stat(filepath.Join(dir, "sock")); statErr == nil {
		t.Error("the control socket was opened: pcheck started")
	}
	return err
}

func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run = %v; want a refusal with %q", err, want)
	}
}

// Issue 21 #3: a state directory others can write, or a record in it that
// is not root's or is a symlink, refuses the start, naming it: a forged
// run/NAME.script would name any pid for pcheck to kill.
func TestRunRefusesAStateDirOthersControl(t *testing.T) {
	testpriv.Root(t)
	forge := func(t *testing.T, state string) string {
		t.Helper()
		run := filepath.Join(state, "run")
		if err := os.MkdirAll(run, 0o700); err != nil {
			t.Fatal(err)
		}
		record := filepath.Join(run, "web.script")
		if err := os.WriteFile(record, []byte(`{"boot_id":"x","script":{"pid":1,"start_time":1}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return record
	}

	t.Run("writable by others", func(t *testing.T) {
		state := t.TempDir()
		forge(t, state)
		if err := os.Chmod(state, 0o777); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, runWith(t, state, "/bin/true"), state+": writable by others (mode 0777); it holds pcheck's state")
	})
	t.Run("record of another user", func(t *testing.T) {
		state := t.TempDir()
		record := forge(t, state)
		if err := os.Chown(record, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, runWith(t, state, "/bin/true"), record+": owned by uid 65534 (nobody), not root; pcheck believes it as its state")
	})
	t.Run("symlinked record", func(t *testing.T) {
		state := t.TempDir()
		record := forge(t, state)
		elsewhere := filepath.Join(t.TempDir(), "services")
		if err := os.WriteFile(elsewhere, []byte(`{"version":1,"services":{}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		services := filepath.Join(state, "services")
		if err := os.Symlink(elsewhere, services); err != nil {
			t.Fatal(err)
		}
		os.Remove(record)
		if err := os.Symlink(elsewhere, record); err != nil {
			t.Fatal(err)
		}
		err := runWith(t, state, "/bin/true")
		wantRefusal(t, err, services+": a symlink, which pcheck does not follow in its state directory")
		wantRefusal(t, err, record+": a symlink")
	})
}

// Issue 21 #2: a restart script missing from root's sticky directory
// refuses the start: anyone could create it there before it runs.
func TestRunRefusesAScriptMissingFromAStickyDir(t *testing.T) {
	testpriv.Root(t)
	sticky := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(sticky, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(sticky, "web.restart")
	wantRefusal(t, runWith(t, t.TempDir(), script), script+": does not exist, and anyone can create it in "+sticky)
}
