// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"path/filepath"
	"sync"
	"syscall"
)

// exeFacts is what a matcher needs to know of its executable's file: the
// path symlinks resolve it to, and the interpreter of a #! script. Finding
// them costs a walk of the path and a read of the file, which every look
// of every service paid; they are kept by path for as long as the file
// (and a script's interpreter) stats the same, so a package upgrade that
// replaces the binary or re-points a symlink is seen at the next look.
type exeFacts struct {
	real   string
	script *script
	stamps [2]fileStamp // the executable's; its interpreter's (scripts)
}

// fileStamp tells a file's version: another file, or the same one
// written, stats differently. The zero stamp is a file that could not be
// stat'ed.
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

func stampOf(path string) fileStamp {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return fileStamp{}
	}
	return fileStamp{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// stampsOf are path's stamp and, for a script, its interpreter's.
func stampsOf(path string, s *script) [2]fileStamp {
	st := [2]fileStamp{stampOf(path)}
	if s != nil && s.interpPath != "" {
		st[1] = stampOf(s.interpPath)
	}
	return st
}

// maxExeFacts bounds the cache: pfiles name far fewer executables.
const maxExeFacts = 4096

type exeFactsCache struct {
	mu    sync.Mutex
	facts map[string]exeFacts
}

var exeCache = &exeFactsCache{facts: map[string]exeFacts{}}

// lookup is path's facts: kept ones while the files are unchanged, else
// found anew (and kept when path exists).
func (c *exeFactsCache) lookup(path string) exeFacts {
	c.mu.Lock()
	known, ok := c.facts[path]
	c.mu.Unlock()
	if ok && known.stamps == stampsOf(path, known.script) {
		return known
	}
	// Stamped before it is read: a change during the read shows as a
	// stamp that differs at the next lookup, never as stale facts kept.
	stamp := stampOf(path)
	f := exeFacts{real: path, script: readShebang(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		f.real = real
	}
	f.stamps = stampsOf(path, f.script)
	f.stamps[0] = stamp
	if stamp == (fileStamp{}) {
		return f
	}
	c.mu.Lock()
	if len(c.facts) >= maxExeFacts {
		clear(c.facts)
	}
	c.facts[path] = f
	c.mu.Unlock()
	return f
}
