// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"os"
	"path/filepath"
	"testing"
)

// The kept facts of an executable follow its file: a binary replaced by a
// script, a symlink re-pointed, and a script's interpreter re-pointed are
// each seen at the next lookup.
func TestExeFactsFollowChanges(t *testing.T) {
	dir := t.TempDir()
	a, b, link := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "svc")
	write := func(path, body string) {
		t.Helper()
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil { // a new inode, as a package upgrade makes
			t.Fatal(err)
		}
	}
	write(a, "\x7fELF")
	write(b, "\x7fELF")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	if f := exeCache.lookup(link); f.real != a || f.script != nil {
		t.Fatalf("facts %+v, want %s, no script", f, a)
	}
	if f := exeCache.lookup(link); f.real != a {
		t.Fatalf("kept facts %+v, want %s", f, a)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b, link); err != nil {
		t.Fatal(err)
	}
	if f := exeCache.lookup(link); f.real != b {
		t.Errorf("after the symlink moved to b: %+v", f)
	}
	py, py2 := filepath.Join(dir, "python3"), filepath.Join(dir, "python3.12")
	write(py2, "\x7fELF")
	if err := os.Symlink(a, py); err != nil {
		t.Fatal(err)
	}
	write(b, "#!"+py+"\n")
	if f := exeCache.lookup(link); f.script == nil || f.script.interpExe != a {
		t.Fatalf("after b became a script: %+v, want the interpreter %s", f.script, a)
	}
	if err := os.Remove(py); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(py2, py); err != nil {
		t.Fatal(err)
	}
	if f := exeCache.lookup(link); f.script == nil || f.script.interpExe != py2 {
		t.Errorf("after the interpreter's symlink moved: %+v, want %s", f.script, py2)
	}
}
