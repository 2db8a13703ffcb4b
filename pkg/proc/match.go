// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/pwatch/pwatch/pkg/argrule"
)

// Matcher says which processes make up a service. It mirrors a pfile's
// process entry without depending on the pfile package.
//
// A process matches when all of the set fields match:
//
//   - Exe (empty: any). The process's /proc/PID/exe equals Exe, or equals
//     Exe with its symbolic links resolved (so `/usr/bin/java` matches the
//     JVM that /etc/alternatives points at). A " (deleted)" suffix is
//     ignored: a binary replaced by a package upgrade still runs the
//     service. When Exe is a script (its first line is `#!interpreter`),
//     a process also matches when it runs that interpreter with Exe as its
//     script: argv[0]'s base name (or the exe) is the interpreter's, and
//     Exe is argv[0] or the first argument of argv[1:] that is not an
//     option (`python3 -u /usr/bin/myscript.py`). The kernel puts the
//     interpreter, not the script, in argv[0] and exe, so this is how a
//     script started by its absolute path shows in /proc.
//   - Args: an RE2 expression searched (unanchored, unless it anchors
//     itself) in argv[1:] joined by one space.
//   - UID: the real user id the processes run as. nil is root's, or the
//     uid of the process reading the table (pcheck's own: it trusts
//     itself as much as root). This is always checked: a process of
//     another user that runs the same executable (uid 65534 starting
//     /usr/sbin/nginx with its own config) is never taken for the
//     service, so its exit counts for nothing and pcheck never signals
//     it as the service's.
//   - Granted: identities taken for the service whatever their real uid,
//     when they match Exe and Args: what pcheck's own restart script
//     started as another user (pkg/supervise, scriptowned.go). nil: none.
//   - PIDFile: the only candidate is the pid written there, and it counts
//     only when it also matches the fields above and was started no later
//     than the file was last written (a stale file whose pid now belongs to
//     a newer process is ignored).
type Matcher struct {
	Exe     string
	Args    *argrule.Rule // nil: any
	UID     *int
	Granted *Grants
	PIDFile string
}

// deletedSuffix is what the kernel appends to /proc/PID/exe when the
// running binary has been unlinked or replaced.
const deletedSuffix = " (deleted)"

// matcher is a Matcher with what it needs from the file system looked up
// once per scan.
type matcher struct {
	Matcher
	exes   []string // Exe and its resolved path
	script *script  // nil unless Exe starts with #!
	owners []uint64 // the real uids a matching process may have
}

// script is the interpreter named on a script's #! line.
type script struct {
	interpPath string // the interpreter as the #! line names it; "" for `#!/usr/bin/env cmd`
	interpExe  string // its resolved path
	name       string // the interpreter's base name as argv[0] shows it: python3
}

func compile(m Matcher) *matcher {
	c := &matcher{Matcher: m, owners: owners(m.UID)}
	if m.Exe == "" {
		return c
	}
	facts := exeCache.lookup(m.Exe)
	c.exes = []string{m.Exe}
	if facts.real != m.Exe {
		c.exes = append(c.exes, facts.real)
	}
	c.script = facts.script
	return c
}

// owners are the real uids a process of a service may have: the pfile's
// user alone, or without one root and the uid pcheck runs as.
func owners(uid *int) []uint64 {
	if uid != nil {
		return []uint64{uint64(*uid)}
	}
	self := uint64(os.Geteuid())
	if self == 0 {
		return []uint64{0}
	}
	return []uint64{0, self}
}

// ownedBy reports whether a process whose real uid is uid may be the
// service's.
func (c *matcher) ownedBy(uid uint64) bool { return slices.Contains(c.owners, uid) }

// Grants is a set of process identities a Matcher takes whatever their
// uid; it is safe for concurrent use. Its zero value is empty.
type Grants struct {
	mu  sync.Mutex
	ids []ID
}

// Set replaces the set with ids.
func (g *Grants) Set(ids []ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ids = slices.Clone(ids)
}

// Has reports whether id is in the set; a nil set holds none.
func (g *Grants) Has(id ID) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.ids, id)
}

// readShebang returns the interpreter of the script at path, or nil when
// path is not a readable #! script.
func readShebang(path string) *script {
	f, err := openIfRegular(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	line, err := bufio.NewReaderSize(f, 256).ReadSlice('\n')
	if err != nil && len(line) == 0 {
		return nil
	}
	rest, ok := strings.CutPrefix(string(line), "#!")
	if !ok {
		return nil
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return nil
	}
	interp := fields[0]
	if filepath.Base(interp) != "env" {
		s := &script{interpPath: interp, interpExe: interp, name: filepath.Base(interp)}
		if real, err := filepath.EvalSymlinks(interp); err == nil {
			s.interpExe = real
		}
		return s
	}
	// #!/usr/bin/env [-S] [NAME=value...] cmd: env looks cmd up in PATH.
	for _, f := range fields[1:] {
		if strings.HasPrefix(f, "-") || strings.Contains(f, "=") {
			continue
		}
		return &script{name: filepath.Base(f)}
	}
	return nil
}

// exeMatches reports whether a process with this exe link runs Exe itself.
func (c *matcher) exeMatches(exe string) bool {
	exe = strings.TrimSuffix(exe, deletedSuffix)
	for _, want := range c.exes {
		if exe == want {
			return true
		}
	}
	return false
}

// mayRunScript reports whether a process with this exe link could be the
// interpreter of the script Exe, so that its argv is worth reading. The
// base-name prefix lets `python3` match the python3.12 binary.
func (c *matcher) mayRunScript(exe string) bool {
	if c.script == nil || exe == "" {
		return false
	}
	exe = strings.TrimSuffix(exe, deletedSuffix)
	if c.script.interpExe != "" && exe == c.script.interpExe {
		return true
	}
	return strings.HasPrefix(filepath.Base(exe), c.script.name)
}

// runsScript reports whether argv is an interpreter running the script Exe.
func (c *matcher) runsScript(exe string, argv []string) bool {
	if c.script == nil || len(argv) == 0 {
		return false
	}
	if argv[0] == c.Exe { // started with exec -a, or an interpreter that sets it
		return c.mayRunScript(exe)
	}
	exe = strings.TrimSuffix(exe, deletedSuffix)
	isInterp := filepath.Base(argv[0]) == c.script.name ||
		(c.script.interpExe != "" && exe == c.script.interpExe)
	if !isInterp {
		return false
	}
	for i, a := range argv[1:] {
		if a == "--" {
			return i+2 < len(argv) && argv[i+2] == c.Exe
		}
		if !strings.HasPrefix(a, "-") {
			return a == c.Exe
		}
	}
	return false
}

// needsArgv reports whether the process's argv must be read to decide;
// false means it cannot match whatever its argv holds.
func (c *matcher) needsArgv(exe string) bool {
	return c.Exe == "" || c.exeMatches(exe) || c.mayRunScript(exe)
}

// matchesArgv decides exe and args once argv (and args, its argsLine) is
// known.
func (c *matcher) matchesArgv(exe string, argv []string, args string) bool {
	if c.Exe != "" && !c.exeMatches(exe) && !c.runsScript(exe, argv) {
		return false
	}
	return c.Args.Match(args)
}

// pidfileUnsafe says why a pidfile (as opened) cannot be believed: it must
// be a regular file that only root or an owner of the service (see owners)
// could have written; "" when it can. Its directory is checked when the pfile is
// loaded (pkg/pfile).
func (c *matcher) pidfileUnsafe(info os.FileInfo) string {
	if !info.Mode().IsRegular() {
		return "not a regular file"
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return "its owner cannot be read"
	}
	if st.Uid != 0 && !c.ownedBy(uint64(st.Uid)) { // root may write a pidfile for any service
		return fmt.Sprintf("owned by uid %d, not by root nor an owner of the service (uids %v)", st.Uid, c.owners)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("writable by group or others (mode %04o)", info.Mode().Perm())
	}
	return ""
}
