// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A pidfile names the process pcheck takes for the service and, on a
// stall, kills with its whole tree. Whoever can write the file, or the
// directory it is in, or one above that, chooses that pid: only root and
// the entry's user may (issue 21). A pfile whose pidfile others could
// write is refused when it is loaded, pcheck's load and padmin check
// alike. What does not exist yet is judged by the directory it would be
// made in. pkg/proc checks the file itself again each time it reads it.

// checkPIDFile returns the error that refuses svc when its pidfile fails
// the rule; src is the pfile's text, to say where the key is.
func checkPIDFile(svc *Service, src []byte) *Error {
	if svc.PIDFile == "" {
		return nil
	}
	w := newPIDFileWriters(svc.User)
	why := w.problem(svc.PIDFile)
	if why == "" {
		return nil
	}
	line, col := keyValueAt(svc.File, src, "pidfile")
	return &Error{File: svc.File, Line: line, Col: col, Msg: fmt.Sprintf(
		"pidfile: %s: others than %s could write the pid pcheck takes for the service (and kills on a stall); keep the pidfile in a directory only they can write",
		why, w.who)}
}

// pidfileWriters are the uids that may write a service's pidfile.
type pidfileWriters struct {
	uids []uint32
	who  string // "root", "root and user tomcat (uid 997)"
}

// newPIDFileWriters trusts root, the user name (or uid) names, and, as
// pkg/trust does, the uid this process runs as (pcheck not run as root).
func newPIDFileWriters(name string) pidfileWriters {
	w := pidfileWriters{uids: []uint32{0}, who: "root"}
	if self := os.Geteuid(); self > 0 {
		w.uids = append(w.uids, uint32(self))
		w.who = fmt.Sprintf("root, uid %d (this process)", self)
	}
	if name == "" {
		return w
	}
	uid, err := strconv.ParseUint(name, 10, 32)
	if err != nil {
		u, lerr := user.Lookup(name)
		if lerr != nil {
			w.who += fmt.Sprintf(" (user %s is unknown here)", name)
			return w
		}
		if uid, err = strconv.ParseUint(u.Uid, 10, 32); err != nil {
			return w
		}
	}
	w.uids = append(w.uids, uint32(uid))
	w.who += fmt.Sprintf(" and user %s (uid %d)", name, uid)
	return w
}

func (w pidfileWriters) trusted(uid uint32) bool {
	for _, u := range w.uids {
		if u == uid {
			return true
		}
	}
	return false
}

// problem says what makes path's pidfile writable by others ("" when
// nothing does): the file, if it exists, and the directories to it, both
// as written and with symbolic links resolved (only whoever can write the
// directory a link is in can change the link).
func (w pidfileWriters) problem(path string) string {
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return path + " is not a regular file"
		}
		if why := w.judge(fi, false); why != "" {
			return path + " is " + why
		}
	}
	dir := filepath.Dir(filepath.Clean(path))
	if why := w.chain(dir); why != "" {
		return why
	}
	if real, err := filepath.EvalSymlinks(deepestExisting(dir)); err == nil {
		return w.chain(real)
	}
	return ""
}

// chain judges dir and every directory above it. The first that exists is
// where the pidfile is (or would be) made: no one else may write it, sticky
// or not. Above it, a root-owned sticky directory (/tmp) passes: no one can
// move what root put there.
func (w pidfileWriters) chain(dir string) string {
	first := true
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			// Missing: the directory above decides who could make it.
		case fi.Mode()&os.ModeSymlink != 0:
			first = false // its own directory, above, decides; its target is judged resolved
		case !fi.IsDir():
			return d + " is not a directory"
		default:
			if why := w.judge(fi, first); why != "" {
				return "its directory " + d + " is " + why
			}
			first = false
		}
		if d == "/" || d == "." {
			return ""
		}
	}
}

// judge says why fi could be written by others than w ("" when it
// cannot); strict refuses a sticky directory too.
func (w pidfileWriters) judge(fi os.FileInfo, strict bool) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "of an owner that cannot be read"
	}
	mode := fi.Mode()
	var why []string
	if !w.trusted(st.Uid) {
		why = append(why, "owned by uid "+strconv.FormatUint(uint64(st.Uid), 10))
	}
	if mode&0o022 != 0 && (strict || !(fi.IsDir() && mode&os.ModeSticky != 0 && st.Uid == 0)) {
		by := "others"
		if mode&0o002 == 0 {
			by = "its group"
		}
		why = append(why, fmt.Sprintf("writable by %s (mode %04o)", by, st.Mode&0o7777))
	}
	return strings.Join(why, " and ")
}

// deepestExisting is dir, or the nearest directory above it that exists.
func deepestExisting(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == "/" || d == "." {
			return d
		}
	}
}

// keyValueAt is where key's value starts in src (line and column, 1-based),
// for messages about a parsed pfile; 0, 0 when key is not found.
func keyValueAt(name string, src []byte, key string) (line, col int) {
	p := &parser{file: name, set: map[string]keyPos{}}
	for _, ll := range p.lex(p.splitLines(src)) {
		w := firstWord(ll.text)
		if !strings.EqualFold(w, key) {
			continue
		}
		off := len(w)
		for off < len(ll.text) && isSpace(ll.text[off]) {
			off++
		}
		return ll.pos(off)
	}
	return 0, 0
}
