// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/pkg/msg"
)

func testLogger(t *testing.T) (*msg.Logger, *syncbuf.Buffer) {
	t.Helper()
	var buf syncbuf.Buffer
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	return l, &buf
}

// A start with a bad pfile is refused whole, naming every error.
func TestRunRefusesBadPfiles(t *testing.T) {
	dir := t.TempDir()
	good := "process /usr/bin/sleep\nrestart_script /bin/true\n"
	bad := "process /usr/bin/sleep\nrestart_script /bin/true\nretry_count -1\nretry_over_action restart\n"
	os.WriteFile(filepath.Join(dir, "a.pfile"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "b.pfile"), []byte(bad), 0o644)
	log, _ := testLogger(t)
	err := Run(context.Background(), Config{Paths: []string{dir}, Watcher: "proc", ControlSocket: filepath.Join(dir, "sock"), StateDir: dir, RebootThreshold: 3, RebootWindow: time.Hour}, log)
	if err == nil {
		t.Fatal("Run started with a bad pfile")
	}
	for _, want := range []string{"b.pfile:3:", "b.pfile:4:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, statErr := os.Stat(filepath.Join(dir, "sock")); statErr == nil {
		t.Error("the control socket was opened although the start was refused")
	}
}

func TestRunRefusesBadRebootSettings(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.pfile")
	os.WriteFile(p, []byte("process /usr/bin/sleep\nrestart_script /bin/true\nretry_over_action reboot\n"), 0o644)
	log, _ := testLogger(t)
	base := Config{Paths: []string{p}, Watcher: "proc", ControlSocket: filepath.Join(dir, "sock"), StateDir: dir, RebootThreshold: 3, RebootWindow: time.Hour}
	bad := map[string]func(*Config){
		"window":  func(c *Config) { c.RebootWindow = 0 },
		"command": func(c *Config) { c.RebootCommand = "echo rebooting; reboot" },
	}
	for name, edit := range bad {
		cfg := base
		edit(&cfg)
		if err := Run(context.Background(), cfg, log); err == nil {
			t.Errorf("%s: Run started with bad reboot settings", name)
		}
	}
}

func TestRunRefusesUnknownUser(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "u.pfile")
	os.WriteFile(p, []byte("process /usr/bin/sleep\nrestart_script /bin/true\nuser no-such-user-pwatch\n"), 0o644)
	log, _ := testLogger(t)
	err := Run(context.Background(), Config{Paths: []string{p}, Watcher: "proc", ControlSocket: filepath.Join(dir, "sock"), StateDir: dir, RebootThreshold: 3, RebootWindow: time.Hour}, log)
	if err == nil || !strings.Contains(err.Error(), "no-such-user-pwatch") {
		t.Fatalf("err = %v, want the unknown user named", err)
	}
}

// Two retry-over actions at once: the higher status wins, so an exit (3)
// meant for a cluster manager never becomes a shutdown's 0.
func TestEndWithKeepsTheHighestStatus(t *testing.T) {
	d := &daemon{ending: make(chan struct{}, 1)}
	d.endWith(3)
	d.endWith(0)
	<-d.ending
	if got := d.endCode.Load(); got != 3 {
		t.Fatalf("end status %d, want 3", got)
	}
}

// The reboot command is run as root too: one others could write refuses
// the start, as an unsafe pfile or script does.
func TestRunRefusesUntrustedRebootCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.pfile")
	os.WriteFile(p, []byte("process /usr/bin/sleep\nrestart_script /bin/true\n"), 0o644)
	cmd := filepath.Join(dir, "reboot-node")
	os.WriteFile(cmd, []byte("#!/bin/sh\n"), 0o700)
	if err := os.Chmod(cmd, 0o757); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	err := Run(context.Background(), Config{Paths: []string{p}, Watcher: "proc", ControlSocket: filepath.Join(dir, "sock"), StateDir: dir, RebootCommand: cmd + " --now", RebootThreshold: 3, RebootWindow: time.Hour}, log)
	if want := cmd + ": writable by others (mode 0757); pcheck runs it as "; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
