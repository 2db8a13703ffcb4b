// SPDX-License-Identifier: Apache-2.0

package trust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/pfile"
)

const nobody = 65534

// mkdir makes dir with exactly mode (no umask).
func mkdir(t *testing.T, dir string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// write makes a file with exactly mode.
func write(t *testing.T, path, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// expect checks that problems are exactly one per path of want, each
// reason containing its text.
func expect(t *testing.T, got Problems, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), got)
	}
	for path, reason := range want {
		found := false
		for _, p := range got {
			if p.Path == path && strings.Contains(p.Reason, reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem %s: ...%s...; got:\n%v", path, reason, got)
		}
	}
}

// Files and directories made with the usual modes in a temporary
// directory pass: /tmp is sticky and root's, t.TempDir is 0700.
func TestSafeFilesPass(t *testing.T) {
	dir := t.TempDir()
	pf := write(t, filepath.Join(dir, "a.pfile"), "process /bin/true\n", 0o644)
	script := write(t, filepath.Join(dir, "a.restart"), "#!/bin/sh\nexit 0\n", 0o755)
	env := write(t, filepath.Join(dir, "b.restart"), "#!/usr/bin/env sh\nexit 0\n", 0o700)
	c := New()
	c.Rules(dir)
	c.Rules(pf)
	c.Program(script)
	c.Program(env)
	c.Program("true") // through $PATH
	c.Program(filepath.Join(dir, "missing.restart"))
	expect(t, c.Take(), nil)
}

func TestUnsafeModes(t *testing.T) {
	dir := t.TempDir()
	c := New()
	gw := write(t, filepath.Join(dir, "g.pfile"), "", 0o664)
	ow := write(t, filepath.Join(dir, "o.restart"), "", 0o777)
	c.Rules(gw)
	c.Program(ow)
	expect(t, c.Take(), map[string]string{
		gw: "writable by group (mode 0664); pcheck reads it as rules",
		ow: "writable by others (mode 0777); pcheck runs it as ",
	})
}

// A directory anyone can write makes everything below it unsafe, however
// deep; a missing file in it too (anyone could create it).
func TestWritableDirectory(t *testing.T) {
	open := mkdir(t, filepath.Join(t.TempDir(), "open"), 0o777)
	sub := mkdir(t, filepath.Join(open, "sub"), 0o755)
	script := write(t, filepath.Join(sub, "x.restart"), "", 0o755)
	c := New()
	c.Program(script)
	c.Program(filepath.Join(open, "not-yet.restart"))
	expect(t, c.Take(), map[string]string{
		open: "writable by others (mode 0777); whoever can write it can replace " + script + ", which pcheck runs as ",
	})
}

// The sticky exception is for directories root owns: a sticky directory
// of another user's is theirs to empty.
func TestStickyDirectory(t *testing.T) {
	testpriv.Root(t)
	base := t.TempDir()
	rootSticky := mkdir(t, filepath.Join(base, "rs"), 0o777|os.ModeSticky)
	userSticky := mkdir(t, filepath.Join(base, "us"), 0o777|os.ModeSticky)
	chown(t, userSticky, nobody)
	ok := write(t, filepath.Join(rootSticky, "a.pfile"), "", 0o644)
	bad := write(t, filepath.Join(userSticky, "b.pfile"), "", 0o644)
	c := New()
	c.Rules(ok)
	c.Rules(bad)
	expect(t, c.Take(), map[string]string{
		userSticky: "owned by uid 65534 (nobody), not root and writable by others (mode 1777)",
	})
}

func TestOwnedByAnotherUser(t *testing.T) {
	testpriv.Root(t)
	dir := t.TempDir()
	theirs := mkdir(t, filepath.Join(dir, "theirs"), 0o755)
	chown(t, theirs, nobody)
	inTheirs := write(t, filepath.Join(theirs, "a.pfile"), "", 0o644) // root's file in their directory
	script := write(t, filepath.Join(dir, "x.restart"), "", 0o755)
	chown(t, script, nobody)
	c := New()
	c.Rules(inTheirs)
	c.Program(script)
	expect(t, c.Take(), map[string]string{
		theirs: "owned by uid 65534 (nobody), not root; whoever can write it can replace " + inTheirs,
		script: "owned by uid 65534 (nobody), not root; pcheck runs it as root",
	})

	// pcheck's own uid is trusted like root.
	own := newChecker(nobody)
	own.Program(script)
	expect(t, own.Take(), nil)
}

// Symlinks are followed name by name: the directory a link is in and the
// directories its target is reached through all count, through a chain.
func TestSymlinks(t *testing.T) {
	base := t.TempDir()
	safe := mkdir(t, filepath.Join(base, "safe"), 0o755)
	open := mkdir(t, filepath.Join(base, "open"), 0o777)
	real := write(t, filepath.Join(safe, "real.restart"), "", 0o755)
	inOpen := write(t, filepath.Join(open, "elsewhere.restart"), "", 0o755)

	// safe/link -> open/hop -> safe/real.restart: open could re-point hop.
	hop := filepath.Join(open, "hop")
	if err := os.Symlink(real, hop); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(safe, "link")
	if err := os.Symlink("../open/hop", link); err != nil {
		t.Fatal(err)
	}
	c := New()
	c.Program(link)
	expect(t, c.Take(), map[string]string{open: "writable by others (mode 0777)"})

	// safe/dirlink -> ../open: a directory link leading into an open one.
	dirlink := filepath.Join(safe, "dirlink")
	if err := os.Symlink("../open", dirlink); err != nil {
		t.Fatal(err)
	}
	c.Program(filepath.Join(dirlink, filepath.Base(inOpen)))
	expect(t, c.Take(), map[string]string{open: "writable by others"})

	// A bad file reached through a link is named, with the name it was
	// given as.
	badReal := write(t, filepath.Join(safe, "bad.pfile"), "", 0o666)
	alias := filepath.Join(safe, "alias.pfile")
	if err := os.Symlink("bad.pfile", alias); err != nil {
		t.Fatal(err)
	}
	c.Rules(alias)
	expect(t, c.Take(), map[string]string{badReal: "(as " + alias + ")"})

	// A loop is refused, not followed for ever.
	loop := filepath.Join(safe, "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	c.Program(loop)
	expect(t, c.Take(), map[string]string{loop: "too many levels of symbolic links"})
}

// The interpreter a script's #! line names is run as root too: directly,
// or through env(1) and $PATH.
func TestInterpreter(t *testing.T) {
	dir := t.TempDir()
	interp := write(t, filepath.Join(dir, "myshell"), "#!/bin/sh\n", 0o777)
	direct := write(t, filepath.Join(dir, "a.restart"), "#! "+interp+" -e\nexit 0\n", 0o755)
	c := New()
	c.Program(direct)
	expect(t, c.Take(), map[string]string{
		interp: "writable by others (mode 0777); pcheck runs it as " + c.runsAs + ", as the #! interpreter of " + direct,
	})

	viaEnv := write(t, filepath.Join(dir, "b.restart"), "#!/usr/bin/env -S FOO=1 PATH="+dir+":/usr/bin myshell -x\nexit 0\n", 0o755)
	c.Program(viaEnv)
	expect(t, c.Take(), map[string]string{interp: "writable by others"})

	// env looks in the PATH scripts run with, never in pcheck's own.
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	viaPcheckPath := write(t, filepath.Join(dir, "c.restart"), "#!/usr/bin/env myshell\nexit 0\n", 0o755)
	c.Program(viaPcheckPath)
	expect(t, c.Take(), nil)

	// An interpreter whose own #! names an unsafe one: nested, as the
	// kernel allows.
	if err := os.Chmod(interp, 0o755); err != nil {
		t.Fatal(err)
	}
	inner := write(t, filepath.Join(dir, "inner"), "", 0o646)
	write(t, interp, "#!"+inner+"\n", 0o755)
	c = New()
	c.Program(direct)
	expect(t, c.Take(), map[string]string{inner: "writable by others (mode 0646)"})
}

// A problem found once is reported once per Take, but again in the next
// Take, so that each file's verdict can be told.
func TestTakeDeduplicates(t *testing.T) {
	open := mkdir(t, filepath.Join(t.TempDir(), "open"), 0o757)
	a := write(t, filepath.Join(open, "a.pfile"), "", 0o644)
	b := write(t, filepath.Join(open, "b.pfile"), "", 0o644)
	c := New()
	c.Rules(open)
	c.Rules(a)
	c.Rules(b)
	expect(t, c.Take(), map[string]string{open: "writable by others (mode 0757)"})
	c.Rules(b)
	expect(t, c.Take(), map[string]string{open: "writable by others"})
}

func TestService(t *testing.T) {
	dir := t.TempDir()
	restart := write(t, filepath.Join(dir, "x.restart"), "", 0o775)
	over := write(t, filepath.Join(dir, "x.over"), "", 0o757)
	c := New()
	c.Service(&pfile.Service{RestartScript: []string{restart, "/tmp/an-argument-not-checked"}, RetryOverScript: []string{over}})
	expect(t, c.Take(), map[string]string{
		restart: "writable by group (mode 0775); pcheck runs it as ",
		over:    "writable by others (mode 0757)",
	})
}

// rootSticky makes a directory like /tmp: root's, mode 1777.
func rootSticky(t *testing.T) string {
	t.Helper()
	testpriv.Root(t)
	return mkdir(t, filepath.Join(t.TempDir(), "sticky"), 0o777|os.ModeSticky)
}

// A file missing from root's sticky directory fails like one of another
// user's: anyone can create it there, and pcheck would run theirs. So do
// an interpreter, a symlink's target and a directory missing there.
func TestMissingInStickyDirectory(t *testing.T) {
	sticky := rootSticky(t)
	safe := mkdir(t, filepath.Join(t.TempDir(), "safe"), 0o755)
	script := filepath.Join(sticky, "later.restart")
	interpOf := write(t, filepath.Join(safe, "a.restart"), "#!"+filepath.Join(sticky, "later-shell")+"\n", 0o755)
	link := filepath.Join(safe, "link.restart")
	if err := os.Symlink(filepath.Join(sticky, "later-target"), link); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(sticky, "later-dir", "x.restart")
	c := New()
	c.Program(script)
	c.Program(interpOf)
	c.Program(link)
	c.Program(deep)
	c.Dir(filepath.Join(sticky, "later-state"), "pcheck's state")
	mode := "(sticky, mode 1777)"
	expect(t, c.Take(), map[string]string{
		script:                                "does not exist, and anyone can create it in " + sticky + " " + mode + "; pcheck runs it as root",
		filepath.Join(sticky, "later-shell"):  "does not exist, and anyone can create it in " + sticky + " " + mode + "; pcheck runs it as root, as the #! interpreter of " + interpOf,
		filepath.Join(sticky, "later-target"): "does not exist, and anyone can create it in " + sticky,
		filepath.Join(sticky, "later-dir"):    "does not exist, and anyone can create it in " + sticky,
		filepath.Join(sticky, "later-state"):  "does not exist, and anyone can create it in " + sticky + " " + mode + "; it holds pcheck's state",
	})

	// Missing from a directory only root can write is no problem: only
	// root can create it.
	c.Program(filepath.Join(safe, "later.restart"))
	expect(t, c.Take(), nil)
}

// #!/usr/bin/env NAME: NAME is looked up as env will, along the whole
// PATH; a directory before the one it is found in, where it is missing
// but anyone could create it, is a hole.
func TestEnvLooksAlongThePath(t *testing.T) {
	sticky := rootSticky(t)
	safe := mkdir(t, filepath.Join(t.TempDir(), "safe"), 0o755)
	write(t, filepath.Join(safe, "myshell"), "", 0o755)
	holeFirst := write(t, filepath.Join(safe, "a.restart"), "#!/usr/bin/env -S PATH="+sticky+":"+safe+" myshell\n", 0o755)
	safeFirst := write(t, filepath.Join(safe, "b.restart"), "#!/usr/bin/env -S PATH="+safe+":"+sticky+" myshell\n", 0o755)
	c := New()
	c.Program(holeFirst)
	expect(t, c.Take(), map[string]string{
		filepath.Join(sticky, "myshell"): "does not exist, and anyone can create it in " + sticky + " (sticky, mode 1777); env runs it as root for the #! line of " + holeFirst,
	})
	c.Program(safeFirst)
	expect(t, c.Take(), nil)

	// What pcheck cannot follow is refused, not guessed.
	opaque := write(t, filepath.Join(safe, "c.restart"), "#!/usr/bin/env -u HOME myshell\n", 0o755)
	c.Program(opaque)
	expect(t, c.Take(), map[string]string{opaque: `its #! line runs env with option "-u" without -S: pcheck cannot tell which program env runs`})
}

func TestEnvCommand(t *testing.T) {
	for _, tc := range []struct{ arg, cmd, path, err string }{
		{"", "", SafePath, ""},
		{"sh", "sh", SafePath, ""},
		{"python3 -u", "python3 -u", SafePath, ""}, // without -S env runs "python3 -u", as Linux does
		{"A=1", "", SafePath, ""},
		{"-S python3 -u", "python3", SafePath, ""},
		{"-Spython3", "python3", SafePath, ""},
		{"-S A=1 PATH=/opt/bin bash", "bash", "/opt/bin", ""},
		{"-S -i bash", "bash", defaultExecPath, ""},
		{"-S -C /tmp bash", "", "", `option "-C"`},
		{"-S '/x y'", "", "", "quotes"},
		{"-i bash", "", "", "without -S"},
	} {
		cmd, path, err := envCommand(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("envCommand(%q) = %q, %q, %v; want an error with %q", tc.arg, cmd, path, err, tc.err)
			}
			continue
		}
		if err != nil || cmd != tc.cmd || path != tc.path {
			t.Errorf("envCommand(%q) = %q, %q, %v; want %q, %q", tc.arg, cmd, path, err, tc.cmd, tc.path)
		}
	}
}

// Open checks the program now, through the file it opens, and gives the
// argv the kernel's #! handling would: interpreter, its argument, the
// script's path, the script's arguments.
func TestOpenExpandsTheChain(t *testing.T) {
	dir := t.TempDir()
	inner := write(t, filepath.Join(dir, "inner"), "#!/bin/sh -e\n", 0o755)
	script := write(t, filepath.Join(dir, "x.restart"), "#! "+inner+"  -x -y \nexit 0\n", 0o755)
	o, err := Open([]string{script, "a b"})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	want := []string{"/bin/sh", "-e", inner, "-x -y", script, "a b"}
	if strings.Join(o.Argv, "|") != strings.Join(want, "|") {
		t.Errorf("argv %q, want %q", o.Argv, want)
	}
	sh, err := os.Stat("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := o.File.Stat(); err != nil || !os.SameFile(fi, sh) {
		t.Errorf("the file to exec is not /bin/sh: %v, %v", fi, err)
	}

	// A name without a slash is found in SafePath, whatever pcheck's PATH.
	t.Setenv("PATH", dir)
	o2, err := Open([]string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	o2.Close()
	if o2.Argv[0] != "true" || !strings.HasPrefix(o2.File.Name(), "/usr/") && !strings.HasPrefix(o2.File.Name(), "/bin/") {
		t.Errorf("true found as %s (argv %q)", o2.File.Name(), o2.Argv)
	}
}

func TestOpenRefuses(t *testing.T) {
	testpriv.Root(t)
	dir := t.TempDir()
	theirs := write(t, filepath.Join(dir, "x.restart"), "#!/bin/sh\n", 0o755)
	chown(t, theirs, nobody)
	_, err := Open([]string{theirs})
	var r *Refusal
	if !errors.As(err, &r) || r.Program != theirs || !strings.Contains(err.Error(), theirs+": owned by uid 65534 (nobody), not root; pcheck runs it as root") {
		t.Fatalf("Open = %v, want a refusal naming the owner", err)
	}
	// Several problems make one line (for syslog).
	group := mkdir(t, filepath.Join(dir, "group"), 0o775)
	both := write(t, filepath.Join(group, "y.restart"), "#!/bin/sh\n", 0o775)
	if _, err := Open([]string{both}); !errors.As(err, &r) || len(r.Problems) != 2 || strings.Contains(r.Why(), "\n") || !strings.Contains(r.Why(), "; "+both+": writable by group") {
		t.Errorf("Open = %v; want two problems on one line", err)
	}
	if _, err := Open([]string{filepath.Join(dir, "missing")}); !errors.Is(err, os.ErrNotExist) || errors.As(err, &r) {
		t.Errorf("Open of a missing file = %v, want not-exist (no refusal)", err)
	}
}
