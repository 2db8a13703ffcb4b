// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// loadWithPIDFile writes a pfile naming pidfile (and user, if not "") into
// a directory of its own and loads it.
func loadWithPIDFile(t *testing.T, pidfile, user string) (string, error) {
	t.Helper()
	src := "process /usr/sbin/nginx\nrestart_script /r\n"
	if user != "" {
		src += "user " + user + "\n"
	}
	src += "pidfile   " + pidfile + "\n"
	path := filepath.Join(t.TempDir(), "svc.pfile")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadFile(path)
	return path, err
}

func mkdir(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// A pidfile others could write names the pid pcheck takes for the service:
// the pfile is refused at load, the error naming the key's place and the
// directory.
func TestPIDFileOthersCanWriteIsRefused(t *testing.T) {
	base := t.TempDir() // root's (or the tester's) and 0700
	open := mkdir(t, filepath.Join(base, "open"), 0o777)
	group := mkdir(t, filepath.Join(base, "group"), 0o775)
	sticky := mkdir(t, filepath.Join(base, "sticky"), 0o777|os.ModeSticky)
	safe := mkdir(t, filepath.Join(base, "safe"), 0o755)
	if err := os.Symlink(open, filepath.Join(safe, "link")); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(safe, "loose.pid")
	if err := os.WriteFile(loose, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o666); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, pidfile, why string }{
		{"world-writable directory", filepath.Join(open, "n.pid"), "its directory " + open + " is writable by others (mode 0777)"},
		{"group-writable directory", filepath.Join(group, "n.pid"), "its directory " + group + " is writable by its group (mode 0775)"},
		{"sticky directory: others may make the file first", filepath.Join(sticky, "n.pid"), "its directory " + sticky + " is writable by others (mode 1777)"},
		{"directory not there yet, in a world-writable one", filepath.Join(open, "later", "n.pid"), "its directory " + open + " is writable by others (mode 0777)"},
		{"through a symlink to a world-writable directory", filepath.Join(safe, "link", "n.pid"), "its directory " + open + " is writable by others (mode 0777)"},
		{"the file itself writable by others", loose, loose + " is writable by others (mode 0666)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, err := loadWithPIDFile(t, tc.pidfile, "")
			want := path + ":3:11: pidfile: " + tc.why + ": others than root could write"
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("LoadFile = %v\nwant an error starting %q", err, want)
			}
		})
	}
	for _, ok := range []string{filepath.Join(safe, "n.pid"), filepath.Join(safe, "not", "yet", "n.pid"), "/run/nginx.pid"} {
		if _, err := loadWithPIDFile(t, ok, ""); err != nil {
			t.Errorf("pidfile %s refused: %v", ok, err)
		}
	}
}

// A directory of the entry's user is as good as root's; another user's is
// not (uid 65534 must not choose the pid of a root service).
func TestPIDFileDirectoryOfTheUser(t *testing.T) {
	testpriv.Root(t)
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := mkdir(t, filepath.Join(base, "run"), 0o755)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(theirs, "svc.pid")
	path, err := loadWithPIDFile(t, pidfile, "")
	want := path + ":3:11: pidfile: its directory " + theirs + " is owned by uid 65534: others than root could write"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadFile = %v\nwant an error starting %q", err, want)
	}
	if _, err := loadWithPIDFile(t, pidfile, "65534"); err != nil {
		t.Errorf("with user 65534, its own directory is refused: %v", err)
	}
	if _, _, err := Load(filepath.Dir(path)); err == nil {
		t.Error("Load took a directory holding the refused pfile")
	}
}
