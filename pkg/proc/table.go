// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/procfs"
)

// ErrGone says a process no longer exists (or its pid now belongs to
// another process). It is normal, never worth more than a debug line.
// Every function here that finds a process vanished returns an error
// wrapping it.
var ErrGone = errors.New("process gone")

// IsGone tells whether err says a process vanished while it was read:
// ErrGone, or the ENOENT or ESRCH a vanished /proc/PID gives to a read of
// one's own.
func IsGone(err error) bool {
	return errors.Is(err, ErrGone) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// State is the one-letter state of /proc/PID/stat: R, S, D, Z, T, t, X, I.
type State byte

func (s State) String() string { return string(rune(s)) }

// Dead reports whether the process has exited: a zombie (Z) or dead (X).
// Uninterruptible (D) and stopped (T, t) processes are alive.
func (s State) Dead() bool { return s == 'Z' || s == 'X' }

// Process is one process as a scan saw it.
type Process struct {
	ID    ID
	PPID  int
	State State
	Comm  string
	// PGID and SID are its process group and session (0 where unknown):
	// a worker keeps its master's after the master is gone.
	PGID, SID int
	// Argv is the command line; nil when it could not be read (a zombie has
	// none, a process may vanish between reads).
	Argv []string
}

// pfKthread is the PF_KTHREAD bit of the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// Table reads the process table under one proc mount. It is safe for
// concurrent use.
type Table struct {
	fs   procfs.FS
	root string
	log  *slog.Logger

	pidfdOnce sync.Once
	pidfdOK   bool
	noPidfd   bool // tests force the kill(2) path

	reads atomic.Uint64 // reads of all of /proc (Reads)

	pidfileMu sync.Mutex
	pidfiles  map[string]pidfileSighting // by path: when each was first seen
	refused   map[string]string          // by path: why it was last refused, logged once
}

// NewTable opens the proc file system mounted at root (/proc, or a
// fixture tree in tests). A nil log discards.
func NewTable(root string, log *slog.Logger) (*Table, error) {
	fsys, err := procfs.NewFS(root)
	if err != nil {
		return nil, fmt.Errorf("open proc file system %s: %w", root, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{fs: fsys, root: root, log: log}, nil
}

// stat reads /proc/PID/stat; a vanished process yields ErrGone.
func (t *Table) stat(pid int) (Stat, error) {
	st, err := ReadStat(t.root, pid)
	if err != nil && !IsGone(err) {
		return Stat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return st, err
}

// Identity reads the identity and state of the process that has pid now.
// A missing pid yields an error wrapping ErrGone.
func (t *Table) Identity(pid int) (ID, State, error) {
	st, err := t.stat(pid)
	if err != nil {
		return ID{}, 0, err
	}
	return ID{PID: pid, StartTime: st.StartTime}, st.State, nil
}

// Identify is Identity on a proc mount opened for this one call.
func Identify(root string, pid int) (ID, State, error) {
	t, err := NewTable(root, nil)
	if err != nil {
		return ID{}, 0, err
	}
	return t.Identity(pid)
}

// Alive reports whether the process id is still there and has not exited
// (CheckAlive's rule). Its pid now holding another process counts as not
// alive.
func (t *Table) Alive(id ID) (bool, error) {
	life, _ := CheckAlive(t.root, id)
	return life == Running, nil
}
