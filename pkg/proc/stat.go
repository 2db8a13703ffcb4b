// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Stat is the part of /proc/PID/stat that deciding life and death needs.
// It is read without procfs's full parse: the event backends read it on
// hot paths.
type Stat struct {
	State     State  // field 3: R, S, D, Z, X, ...
	PPID      int    // field 4
	Flags     uint64 // field 9: the task's PF_* flags
	Threads   int    // field 20: threads still counted in the group
	StartTime uint64 // field 22
	// ExitCode is field 52, the wait(2)-style status the kernel keeps for a
	// zombie (0 while running; readable only with ptrace access).
	ExitCode int
}

// ReadStat reads /proc/PID/stat under procRoot. A vanished process gives an
// error wrapping ErrGone (ENOENT and ESRCH are folded into it).
func ReadStat(procRoot string, pid int) (Stat, error) {
	return ReadStatFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
}

// ReadStatFile is ReadStat of one stat file (a thread's, under task/).
func ReadStatFile(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if IsGone(err) {
			err = fmt.Errorf("%w: %w", ErrGone, err)
		}
		return Stat{}, err
	}
	return ParseStat(b)
}

// ParseStat parses one /proc/PID/stat line. comm (field 2) may hold spaces
// and parentheses, so fields are counted from its last ')'.
func ParseStat(b []byte) (Stat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 >= len(b) {
		return Stat{}, fmt.Errorf("malformed stat %q", b)
	}
	f := bytes.Fields(b[end+2:]) // f[0] is field 3
	field := func(n int) (uint64, error) {
		if n-3 >= len(f) {
			return 0, fmt.Errorf("stat has no field %d", n)
		}
		return strconv.ParseUint(string(f[n-3]), 10, 64)
	}
	var s Stat
	if len(f) == 0 || len(f[0]) != 1 {
		return s, fmt.Errorf("malformed stat state in %q", b)
	}
	s.State = State(f[0][0])
	ppid, err := field(4)
	if err != nil {
		return s, err
	}
	s.PPID = int(ppid)
	if s.Flags, err = field(9); err != nil {
		return s, err
	}
	threads, err := field(20)
	if err != nil {
		return s, err
	}
	s.Threads = int(threads)
	if s.StartTime, err = field(22); err != nil {
		return s, err
	}
	// Field 52 exists since Linux 3.5; without it the status is unknown.
	if code, err := field(52); err == nil {
		s.ExitCode = int(code)
	}
	return s, nil
}

// GroupGone tells whether the stat shows a thread group that has finished:
// a zombie (or dead) leader with no other thread left. A leader that called
// pthread_exit shows Z while its other threads still run: that is alive.
func (s Stat) GroupGone() bool { return s.State.Dead() && s.Threads <= 1 }

// Life is what CheckAlive found of an identity.
type Life int

const (
	// Running: the identity's thread group still runs (or could not be
	// read for another reason than its absence: never report a death not
	// seen).
	Running Life = iota
	// Zombie: it has exited and is not reaped yet; its Stat is valid.
	Zombie
	// Gone: reaped, or its pid now holds another process.
	Gone
)

// CheckAlive is the one rule for "alive" that every backend, fallback and
// supervisor uses: thread-group aware, and an identity whose pid was
// reused is gone.
func CheckAlive(procRoot string, id ID) (Life, Stat) {
	st, err := ReadStat(procRoot, id.PID)
	switch {
	case errors.Is(err, ErrGone):
		return Gone, Stat{}
	case err != nil:
		return Running, Stat{}
	case st.StartTime != id.StartTime:
		return Gone, Stat{}
	case st.GroupGone():
		return Zombie, st
	}
	return Running, st
}
