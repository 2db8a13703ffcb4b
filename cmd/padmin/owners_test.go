// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// padmin check warns of an entry without user whose executable anyone can
// run (issue 21): pcheck takes only root's processes for it. With user, or
// an executable others cannot run (its mode, or a directory on its way),
// it says nothing.
func TestCheckWarnsOfAnEntryAnyUserCouldImitate(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // others may reach it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("\x7fELF"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	anyone, few := exe("anyone", 0o755), exe("few", 0o750)
	hidden := filepath.Join(dir, "hidden")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	unreachable := exe("hidden/anyone", 0o755)
	bare := writeFile(t, dir, "bare.pfile", "process "+anyone+"\nrestart_script /r\n")
	named := writeFile(t, dir, "named.pfile", "process "+anyone+"\nuser root\nrestart_script /r\n")
	private := writeFile(t, dir, "private.pfile", "process "+few+"\nrestart_script /r\n")
	inPrivate := writeFile(t, dir, "inprivate.pfile", "process "+unreachable+"\nrestart_script /r\n")
	missing := writeFile(t, dir, "missing.pfile", "process "+filepath.Join(dir, "absent")+"\nrestart_script /r\n")

	out, errOut, status := padmin(t, "check", bare, named, private, inPrivate, missing)
	if status != 0 || out != "OK bare\nOK named\nOK private\nOK inprivate\nOK missing\n" {
		t.Fatalf("status %d, stdout %q, stderr %q: a warning must not fail the check", status, out, errOut)
	}
	want := bare + ": warning: process " + anyone + " can be run by any user and no user is set: pcheck takes only root's processes for the service; name the user it runs as with user, or write \"user root\" to say so\n"
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
}

// padmin check refuses a pfile whose pidfile others could write, as
// pcheck's load does (issue 21).
func TestCheckRefusesAPIDFileOthersCanWrite(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "run")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	pf := writeFile(t, dir, "svc.pfile", "process /usr/sbin/nginx\nuser root\nrestart_script /r\npidfile "+filepath.Join(open, "svc.pid")+"\n")
	out, errOut, status := padmin(t, "check", pf)
	want := pf + ":4:9: pidfile: its directory " + open + " is writable by others (mode 0777): others than root"
	if status != 1 || out != "" || !strings.HasPrefix(errOut, want) {
		t.Errorf("status %d, stdout %q, stderr %q; want 1, nothing, an error starting %q", status, out, errOut, want)
	}
}
