// SPDX-License-Identifier: Apache-2.0

package trust

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// SafePath is the PATH of every program pcheck runs (restart and
// retry-over scripts, the reboot command), and where a program named
// without a slash, or by `#!/usr/bin/env NAME`, is looked up.
const SafePath = "/usr/sbin:/usr/bin:/sbin:/bin"

// defaultExecPath is where execvp(3) looks when PATH is unset (env -i).
const defaultExecPath = "/bin:/usr/bin"

// maxShebang is how much of a #! line the kernel reads (BINPRM_BUF_SIZE).
const maxShebang = 256

// Program checks a program pcheck runs as root (a restart script, the
// reboot command), and the interpreter its #! line names. A name without a
// slash is looked up in SafePath, as exec does with that PATH.
func (c *Checker) Program(path string) {
	if _, exe, _ := c.program(path); exe != nil {
		exe.Close()
	}
}

// program checks path (a name without a slash is looked up in SafePath)
// and its #! chain, and returns the argv the kernel's #! handling puts
// before the program's own arguments, and the chain's end, the file to
// exec, open. exe is nil when a file is missing or failed.
func (c *Checker) program(path string) (argv []string, exe *os.File, err error) {
	name := path
	if !strings.Contains(path, "/") {
		use := "pcheck runs it as " + c.runsAs + ", looked up in PATH " + SafePath
		if path = c.lookPath(name, SafePath, use); path == "" {
			return nil, nil, fmt.Errorf("%s: not found in %s", name, SafePath)
		}
	}
	return c.chain(path, name, "", 0)
}

// chain checks path, found as name (argv[0], or the name a #! line
// gives), and the interpreters its #! line makes the kernel run.
// interpreterOf is the script whose interpreter it is ("" at the top).
func (c *Checker) chain(path, name, interpreterOf string, depth int) (argv []string, exe *os.File, err error) {
	use := "pcheck runs it as " + c.runsAs
	if interpreterOf != "" {
		use = fmt.Sprintf("pcheck runs it as %s, as the #! interpreter of %s", c.runsAs, interpreterOf)
	}
	f, err := c.open(path, use)
	if f == nil {
		return nil, nil, err
	}
	interp, arg, isScript, err := shebang(f)
	if err != nil {
		c.fail(path, fmt.Sprintf("cannot read its #! line to check the interpreter: %v; %s", err, use))
		f.Close()
		return nil, nil, nil
	}
	if !isScript {
		return []string{name}, f, nil
	}
	f.Close() // the interpreter reads the script by its path (docs/behaviour.md)
	if depth >= maxInterpreters {
		c.fail(path, "too many nested #! interpreters; "+use)
		return nil, nil, nil
	}
	// Scripts run in / (docs/behaviour.md): a relative interpreter is
	// found there, as the kernel would.
	ipath := interp
	if !filepath.IsAbs(ipath) {
		ipath = "/" + ipath
	}
	pre, exe, err := c.chain(ipath, interp, path, depth+1)
	if exe == nil {
		return nil, nil, err
	}
	if filepath.Base(interp) == "env" {
		c.envTarget(arg, path, depth)
	}
	argv = pre
	if arg != "" {
		argv = append(argv, arg)
	}
	return append(argv, path), exe, nil
}

// open checks path, the walk to it and then the file itself, through the
// descriptor it returns (nil when it is missing or fails; err when it is
// missing).
func (c *Checker) open(path, use string) (*os.File, error) {
	real, fi, openIn := c.resolve(path, path, "which pcheck runs as "+c.runsAs, 0)
	if fi == nil {
		c.missing(real, openIn, use)
		return nil, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	}
	use += reachedAs(real, path)
	if !fi.Mode().IsRegular() {
		c.fail(real, "not a regular file; "+use)
		return nil, nil
	}
	f, err := openNoSymlinks(real)
	if err != nil {
		c.fail(real, fmt.Sprintf("cannot open it to check it: %v; %s", err, use))
		return nil, nil
	}
	st, err := f.Stat()
	if err == nil && !os.SameFile(fi, st) {
		err = errors.New("it changed while it was checked")
	}
	if err != nil {
		c.fail(real, fmt.Sprintf("%v; %s", err, use))
		f.Close()
		return nil, nil
	}
	if !c.judge(real, path, st, use, false) && !c.anyway {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// openNoSymlinks opens a real path (no symlink in it, as resolve found it)
// so that a symlink put in since fails the open rather than being
// followed. O_NONBLOCK: a FIFO put there must not hang pcheck.
func openNoSymlinks(path string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) { // before Linux 5.6, or a seccomp filter
		fd, err = unix.Open(path, flags|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// shebang reads f's #! line as the kernel does (binfmt_script): the
// interpreter ends at the first blank, and the rest of the line, trimmed,
// is one argument.
func shebang(f *os.File) (interp, arg string, isScript bool, err error) {
	buf := make([]byte, maxShebang)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", false, unwrapPath(err)
	}
	buf = buf[:n]
	if !bytes.HasPrefix(buf, []byte("#!")) {
		return "", "", false, nil
	}
	line := buf[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else if n == maxShebang {
		return "", "", true, fmt.Errorf("the line is longer than the %d bytes the kernel reads", maxShebang)
	}
	text := strings.Trim(string(line), " \t")
	interp = text
	if i := strings.IndexAny(text, " \t"); i >= 0 {
		interp, arg = text[:i], strings.Trim(text[i:], " \t")
	}
	if interp == "" {
		return "", "", true, errors.New("it names no interpreter")
	}
	return interp, arg, true, nil
}

// envTarget checks the program `#!/usr/bin/env ARG` makes env run: found
// as env will find it, in PATH (SafePath, or the one -S sets).
func (c *Checker) envTarget(arg, script string, depth int) {
	use := fmt.Sprintf("env runs it as %s for the #! line of %s", c.runsAs, script)
	cmd, path, err := envCommand(arg)
	if err != nil {
		c.fail(script, fmt.Sprintf("its #! line runs env with %v: pcheck cannot tell which program env runs; %s", err, "pcheck runs it as "+c.runsAs))
		return
	}
	if cmd == "" {
		return
	}
	if !strings.Contains(cmd, "/") {
		if cmd = c.lookPath(cmd, path, use+", looked up in PATH "+path); cmd == "" {
			return // not found: running it says so
		}
	} else if !filepath.IsAbs(cmd) {
		cmd = "/" + cmd
	}
	if _, exe, _ := c.chain(cmd, cmd, script, depth+1); exe != nil {
		exe.Close()
	}
}

// envCommand is the command env(1) runs for its #! argument, and the PATH
// it looks it up in. Without -S the kernel's one argument is env's one
// argument; with -S it is split at blanks. What pcheck cannot follow
// (other options, quotes, escapes, variables) is an error.
func envCommand(arg string) (cmd, path string, err error) {
	path = SafePath
	if arg == "" {
		return "", path, nil
	}
	if !strings.HasPrefix(arg, "-") {
		if strings.Contains(arg, "=") {
			return "", path, nil // an assignment: env runs nothing
		}
		return arg, path, nil
	}
	words := strings.Fields(arg)
	switch {
	case words[0] == "-S" || words[0] == "--split-string":
		words = words[1:]
	case strings.HasPrefix(words[0], "-S"):
		words[0] = words[0][2:]
	default:
		return "", "", fmt.Errorf("option %q without -S", words[0])
	}
	if strings.ContainsAny(arg, "\"'\\$") {
		return "", "", errors.New("quotes, escapes or variables in -S")
	}
	for _, w := range words {
		switch {
		case w == "-i" || w == "-" || w == "--ignore-environment":
			path = defaultExecPath
		case strings.HasPrefix(w, "-"):
			return "", "", fmt.Errorf("option %q", w)
		case strings.HasPrefix(w, "PATH="):
			path = strings.TrimPrefix(w, "PATH=")
		case strings.Contains(w, "="):
		default:
			return w, path, nil
		}
	}
	return "", path, nil
}

// lookPath finds name in search as execvp(3) would: the first directory
// holding an executable regular file of that name. A directory before it
// where the name is missing but anyone could create it is a problem: what
// is found there tomorrow runs instead.
func (c *Checker) lookPath(name, search, use string) string {
	for _, dir := range filepath.SplitList(search) {
		if dir == "" || !filepath.IsAbs(dir) {
			dir = "/" + dir // programs run in /
		}
		candidate := filepath.Join(dir, name)
		real, fi, openIn := c.resolve(candidate, candidate, "which "+use, 0)
		if fi == nil {
			c.missing(real, openIn, use)
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 || fi.IsDir() {
			continue
		}
		if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		return candidate
	}
	return ""
}

// Refusal is the trust rule refusing, just before exec, to run a program.
type Refusal struct {
	Program  string
	Problems Problems
}

func (r *Refusal) Error() string { return "refused to run " + r.Program + ": " + r.Why() }

// Why is every problem on one line, "; " between them: fit for syslog.
func (r *Refusal) Why() string {
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "; ")
}

func (r *Refusal) Unwrap() error { return r.Problems }

// Opened is a program checked just now through the file exec will run.
type Opened struct {
	// File is the chain's end, the file to exec: the program itself, or
	// the interpreter its #! line (and theirs) leads to.
	File *os.File
	// Argv is the argv to exec File with: the #! chain expanded as the
	// kernel would, then the program's own arguments.
	Argv []string
}

// Close closes the file.
func (o *Opened) Close() error { return o.File.Close() }

// Open checks argv[0], the walk to it, its #! chain and the program env
// would run, now, each file through the descriptor it was opened as, and
// returns the end of the chain open, to be exec'd through that very
// descriptor (/proc/self/fd/N): nothing can be swapped between the check
// and the exec. The scripts of the chain are then read by their
// interpreters by path; they passed the rule just now, so only root can
// have changed them since. A failure of the rule is a *Refusal; a missing
// file is an error wrapping fs.ErrNotExist.
func Open(argv []string) (*Opened, error) {
	o, refusal, err := open(argv, false)
	if refusal != nil {
		return nil, refusal
	}
	return o, err
}

// OpenAnyway is Open for --unsafe-skip-trust-check (tests only): what
// fails the rule is opened all the same, and the refusal there would have
// been is returned beside it.
func OpenAnyway(argv []string) (*Opened, *Refusal, error) { return open(argv, true) }

func open(argv []string, anyway bool) (*Opened, *Refusal, error) {
	if len(argv) == 0 {
		return nil, nil, errors.New("no program to run")
	}
	c := New()
	c.anyway = anyway
	pre, exe, err := c.program(argv[0])
	var refusal *Refusal
	if ps := c.Take(); len(ps) > 0 {
		refusal = &Refusal{Program: argv[0], Problems: ps}
		if !anyway {
			if exe != nil {
				exe.Close()
			}
			return nil, refusal, nil
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if exe == nil { // a problem says why, or the file could not be opened
		if refusal != nil {
			return nil, nil, fmt.Errorf("%s cannot be run: %w", argv[0], refusal)
		}
		return nil, nil, fmt.Errorf("%s cannot be run", argv[0])
	}
	return &Opened{File: exe, Argv: append(pre, argv[1:]...)}, refusal, nil
}
