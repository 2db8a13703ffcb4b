// SPDX-License-Identifier: Apache-2.0

package control_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// The socket's directory must be one only root (or pcheck's uid) can
// write, up to /: whoever can write it could swap pcheck's socket for
// theirs. A sticky directory of root's (/tmp) passes.
func TestSocketDirectoryTrust(t *testing.T) {
	testpriv.Root(t)
	const nobody = 65534
	cases := []struct {
		name   string
		mode   os.FileMode
		owner  int
		nested bool   // the socket is in a 0755 subdirectory of this one
		refuse string // "" when accepted
	}{
		{name: "private", mode: 0o700},
		{name: "readable", mode: 0o755},
		{name: "sticky-root", mode: 0o777 | os.ModeSticky},
		{name: "world-writable", mode: 0o777, refuse: "writable by others (mode 0777)"},
		{name: "group-writable", mode: 0o775, refuse: "writable by group (mode 0775)"},
		{name: "another-owner", mode: 0o755, owner: nobody, refuse: "owned by uid 65534 (nobody), not root"},
		{name: "sticky-not-root", mode: 0o777 | os.ModeSticky, owner: nobody, refuse: "owned by uid 65534 (nobody), not root and writable by others (mode 1777)"},
		{name: "writable-parent", mode: 0o777, nested: true, refuse: "writable by others (mode 0777); whoever can write it can replace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), c.name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			if c.owner != 0 {
				if err := os.Chown(dir, c.owner, c.owner); err != nil {
					t.Fatal(err)
				}
			}
			sockDir := dir
			if c.nested {
				sockDir = filepath.Join(dir, "run")
				if err := os.Mkdir(sockDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(sockDir, "pcheck.sock")
			srv, err := control.Listen(path, &fakeHandler{}, nil)
			if c.refuse == "" {
				if err != nil {
					t.Fatalf("refused a safe directory: %v", err)
				}
				defer srv.Close()
				if _, err := (control.Client{Path: path}).Status(ctxT(t), ""); err != nil {
					t.Errorf("status: %v", err)
				}
				return
			}
			if err == nil {
				srv.Close()
				t.Fatalf("listened in a directory that fails the trust rule (%s)", c.refuse)
			}
			if !strings.Contains(err.Error(), dir+": "+c.refuse) {
				t.Errorf("error %q\nwant it to name %s and say %q", err, dir, c.refuse)
			}
			if _, statErr := os.Lstat(path); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("a socket was created in the refused directory: %v", statErr)
			}
		})
	}
}

// The socket is 0600 from its creation even under a umask that lets
// everything through: its mode is set on the unbound socket, not by name
// afterwards (a name a symlink could redirect).
func TestSocketModeSetBeforeBind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pcheck.sock")
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	srv := listen(t, path, &fakeHandler{}, nil)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file mode %v, want a 0600 socket", fi.Mode())
	}
	// No temporary name is left beside it.
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the socket's directory holds %v, want only pcheck.sock", names)
	}
	srv.Close()
}

// A symlink put at the socket's name is never followed: bind fails on it
// and the file it points to keeps its mode.
func TestSocketSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pcheck.sock")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if srv, err := control.Listen(path, &fakeHandler{}, nil); err == nil {
		srv.Close()
		t.Fatal("listened over a symlink")
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("the symlink's target became mode %v", fi.Mode().Perm())
	}
	if l, err := os.Readlink(path); err != nil || l != victim {
		t.Errorf("the symlink was replaced: %q, %v", l, err)
	}
}
