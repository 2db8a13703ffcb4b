// SPDX-License-Identifier: Apache-2.0

// Package trust decides whether pcheck, a root daemon, may read a file as
// rules or run it: only if no one but root (or pcheck's own uid) could have
// written it. A file passes when it is owned by root or that uid and not
// writable by group or others, and so is every directory it is reached
// through, up to /; a sticky directory owned by root (/tmp) passes too,
// since no one can replace what root put there; but a name missing from
// such a directory fails, since anyone can create it. Symlinks are followed
// one name at a time, as the kernel does, so the directories a link is
// found in and those it leads through are all checked.
//
// The rule is checked when the rules are loaded, and again, through the
// opened file, each time a program is run (Open).
package trust

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Problem is one file or directory that fails the rule, and why.
type Problem struct {
	Path   string
	Reason string
}

func (p *Problem) Error() string { return p.Path + ": " + p.Reason }

// Problems is every problem found; it unwraps into them.
type Problems []*Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// Err is ps as an error: nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// maxLinks bounds the symlinks followed for one path, as the kernel's
// ELOOP does.
const maxLinks = 40

// maxInterpreters bounds nested #! interpreters (the kernel allows 4).
const maxInterpreters = 4

// Checker checks files against the rule and collects the problems. It
// remembers each path's verdict, so a directory shared by many files is
// looked at once.
type Checker struct {
	uid     int // trusted besides root
	runsAs  string
	verdict map[string]*Problem // by path; nil: passed
	pending Problems
	anyway  bool // open what fails too (OpenAnyway)
}

// New returns a Checker that trusts root and the process's effective uid.
func New() *Checker { return newChecker(os.Geteuid()) }

func newChecker(uid int) *Checker {
	runsAs := "root"
	if uid != 0 {
		runsAs = "uid " + strconv.Itoa(uid)
	}
	return &Checker{uid: uid, runsAs: runsAs, verdict: map[string]*Problem{}}
}

// Take returns the problems found since the last Take, each once.
func (c *Checker) Take() Problems {
	var out Problems
	seen := map[*Problem]bool{}
	for _, p := range c.pending {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	c.pending = nil
	return out
}

// Rules checks a pfile, or a directory of pfiles, that pcheck reads as
// its rules.
func (c *Checker) Rules(path string) {
	real, fi, _ := c.resolve(path, path, "which pcheck reads as rules", 0)
	if fi == nil {
		return // missing: loading it says so
	}
	if fi.IsDir() {
		c.judge(real, path, fi, "pcheck reads the pfiles in it as rules"+reachedAs(real, path), true)
		return
	}
	use := "pcheck reads it as rules" + reachedAs(real, path)
	if !fi.Mode().IsRegular() {
		c.fail(real, "not a regular file; "+use)
		return
	}
	c.judge(real, path, fi, use, false)
}

// Dir checks a directory that holds something pcheck relies on (holds:
// "pcheck's control socket"), as it checks a pfile's.
func (c *Checker) Dir(path, holds string) {
	real, fi, openIn := c.resolve(path, path, "which holds "+holds, 0)
	use := "it holds " + holds + reachedAs(real, path)
	if fi == nil {
		c.missing(real, openIn, use) // else pcheck creates it, root's
		return
	}
	if !fi.IsDir() {
		c.fail(real, "not a directory; "+use)
		return
	}
	c.judge(real, path, fi, use, true)
}

// reachedAs names the path a file was given as, when that is not its real
// path, so that a message about the real file says why it matters.
func reachedAs(real, given string) string {
	if abs, err := filepath.Abs(given); err == nil && abs == real {
		return ""
	}
	return " (as " + given + ")"
}

// resolve walks path from / one name at a time, checking every directory
// it passes through for subject (what the walk is for, shown in messages:
// "which pcheck runs as root"), and returns the real path of the last name
// and its Lstat. fi is nil when a name is missing, or when the path cannot
// be followed (a problem then says why). A name missing from a directory
// that passed the rule only as root's sticky one also names that
// directory, openIn: anyone can create the name there.
func (c *Checker) resolve(path, subject, use string, links int) (real string, fi os.FileInfo, openIn string) {
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			c.fail(path, fmt.Sprintf("cannot check a relative path: %v", err))
			return path, nil, ""
		}
		path = wd + "/" + path
	}
	cur := "/"
	if !c.checkDir(cur, subject, use) {
		return path, nil, ""
	}
	names := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	for i, name := range names {
		last := i == len(names)-1
		switch name {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, os.ErrNotExist) {
			return next, nil, c.openToAll(cur)
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return next, nil, ""
		}
		if err != nil {
			c.fail(next, fmt.Sprintf("cannot check it: %v", unwrapPath(err)))
			return next, nil, ""
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			// The link's own owner and mode do not matter: only whoever
			// can write its directory (checked) can change it.
			if links++; links > maxLinks {
				c.fail(path, "too many levels of symbolic links")
				return next, nil, ""
			}
			target, err := os.Readlink(next)
			if err != nil {
				c.fail(next, fmt.Sprintf("cannot read the symlink: %v", unwrapPath(err)))
				return next, nil, ""
			}
			if !filepath.IsAbs(target) {
				target = cur + "/" + target
			}
			real, fi, openIn := c.resolve(target, subject, use, links)
			if last || fi == nil {
				return real, fi, openIn
			}
			if !fi.IsDir() || !c.checkDir(real, subject, use) {
				return real, nil, ""
			}
			cur = real
			continue
		}
		if last {
			return next, fi, ""
		}
		if !fi.IsDir() {
			return next, nil, ""
		}
		if !c.checkDir(next, subject, use) {
			return next, nil, ""
		}
		cur = next
	}
	fi, err := os.Lstat(cur)
	if err != nil {
		return cur, nil, ""
	}
	return cur, fi, ""
}

// openToAll is dir when others than root may create names in it: a
// directory that passed the rule as root's sticky one. A directory that
// failed the rule has its problem already.
func (c *Checker) openToAll(dir string) string {
	if p := c.verdict[dir]; p != nil {
		return ""
	}
	fi, err := os.Lstat(dir)
	if err != nil || fi.Mode().Perm()&0o022 == 0 {
		return ""
	}
	return dir
}

// missing records a file that does not exist in openIn (when set), where
// anyone can create it: it fails like a file of theirs.
func (c *Checker) missing(path, openIn, use string) {
	if openIn == "" {
		return
	}
	fi, err := os.Lstat(openIn)
	mode := "sticky"
	if err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			mode += ", mode " + octal(st.Mode)
		}
	}
	c.fail(path, fmt.Sprintf("does not exist, and anyone can create it in %s (%s); %s", openIn, mode, use))
}

// checkDir checks a directory the walk passes through; false when it
// cannot be looked at.
func (c *Checker) checkDir(dir, subject, use string) bool {
	if p, done := c.verdict[dir]; done {
		c.pending = appendNonNil(c.pending, p)
		return true
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		c.fail(dir, fmt.Sprintf("cannot check it: %v", unwrapPath(err)))
		return false
	}
	c.judge(dir, subject, fi, fmt.Sprintf("whoever can write it can replace %s, %s", subject, use), true)
	return true
}

// judge applies the rule to one file or directory and records its
// verdict; false when it fails.
func (c *Checker) judge(path, subject string, fi os.FileInfo, use string, isDir bool) bool {
	if p, done := c.verdict[path]; done {
		c.pending = appendNonNil(c.pending, p)
		return p == nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		c.fail(path, "cannot read its owner; "+use)
		return false
	}
	mode := fi.Mode()
	if isDir && mode&os.ModeSticky != 0 && st.Uid == 0 {
		c.verdict[path] = nil
		return true
	}
	var why []string
	if int(st.Uid) != 0 && int(st.Uid) != c.uid {
		not := "not root"
		if c.uid != 0 {
			not = "not root or uid " + strconv.Itoa(c.uid)
		}
		why = append(why, "owned by "+describeUID(st.Uid)+", "+not)
	}
	switch {
	case mode&0o002 != 0:
		why = append(why, "writable by others (mode "+octal(st.Mode)+")")
	case mode&0o020 != 0:
		why = append(why, "writable by group (mode "+octal(st.Mode)+")")
	}
	if len(why) == 0 {
		c.verdict[path] = nil
		return true
	}
	c.fail(path, strings.Join(why, " and ")+"; "+use)
	return false
}

// fail records a problem with path (whose verdict it becomes).
func (c *Checker) fail(path, reason string) {
	p := &Problem{Path: path, Reason: reason}
	c.verdict[path] = p
	c.pending = append(c.pending, p)
}

func appendNonNil(ps Problems, p *Problem) Problems {
	if p == nil {
		return ps
	}
	return append(ps, p)
}

// octal is a stat mode's permission bits as chmod takes them: 0775, 1777.
func octal(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

func describeUID(uid uint32) string {
	s := "uid " + strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}

// unwrapPath drops the path an os error repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
