// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Stat is the part of /proc/PID/stat that pwatch reads: identity, life
// and death, the tree, and the counters of the limits. It is read without
// procfs's parse (fmt.Sscan of every field, thirty allocations a process):
// a read of all of /proc, the event backends and the limits' sampler read
// it on hot paths.
type Stat struct {
	Comm      string // field 2, without its parentheses
	State     State  // field 3: R, S, D, Z, X, ...
	PPID      int    // field 4
	PGID      int    // field 5; -1 once the exiting task's signal state is gone
	SID       int    // field 6; -1 as PGID
	Flags     uint64 // field 9: the task's PF_* flags
	CPUTicks  uint64 // fields 14 and 15: utime + stime, in USER_HZ ticks
	Threads   int    // field 20: threads still counted in the group
	StartTime uint64 // field 22
	RSSPages  uint64 // field 24: resident pages
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
	var buf [statBufSize]byte
	b, err := readSmall(path, buf[:])
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// statBufSize holds any stat line: 52 numbers and a comm of at most 64
// bytes.
const statBufSize = 2048

// readSmall reads a small /proc file into buf with one read: without
// os.File, which costs a poller registration and a finalizer per open.
// A vanished process gives an error wrapping ErrGone.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err == nil {
		var n int
		n, err = syscall.Read(fd, buf)
		syscall.Close(fd)
		if err == nil {
			return buf[:n], nil
		}
	}
	err = &os.PathError{Op: "read", Path: path, Err: err}
	if IsGone(err) {
		err = fmt.Errorf("%w: %w", ErrGone, err)
	}
	return nil, err
}

// ParseStat parses one /proc/PID/stat line. comm (field 2) may hold spaces
// and parentheses, so fields are counted from its last ')'.
func ParseStat(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return Stat{}, fmt.Errorf("malformed stat %q", b)
	}
	s := Stat{Comm: string(b[open+1 : end])}
	rest := b[end+2:]
	var v [53]uint64 // v[n] is field n, for the numeric fields read
	var unknown [7]bool
	for n := 3; n <= 52; n++ {
		rest = bytes.TrimLeft(rest, " \n")
		if len(rest) == 0 {
			if n <= 24 {
				return Stat{}, fmt.Errorf("stat has no field %d", n)
			}
			break // field 52 exists since Linux 3.5: the status is unknown
		}
		j := bytes.IndexAny(rest, " \n")
		if j < 0 {
			j = len(rest)
		}
		f := rest[:j]
		rest = rest[j:]
		switch n {
		case 3:
			if len(f) != 1 {
				return Stat{}, fmt.Errorf("malformed stat state in %q", b)
			}
			s.State = State(f[0])
		case 5, 6:
			// The kernel prints -1 for a task that has released its
			// signal handlers (it is exiting): a valid line, not a bad one.
			if string(f) == "-1" {
				unknown[n] = true
				continue
			}
			fallthrough
		case 4, 9, 14, 15, 20, 22, 24, 52:
			x, ok := atou(f)
			if !ok {
				return Stat{}, fmt.Errorf("stat field %d: %q is not a number", n, f)
			}
			v[n] = x
		}
	}
	s.PPID, s.PGID, s.SID, s.Flags = int(v[4]), int(v[5]), int(v[6]), v[9]
	if unknown[5] {
		s.PGID = -1
	}
	if unknown[6] {
		s.SID = -1
	}
	s.CPUTicks, s.Threads, s.StartTime, s.RSSPages, s.ExitCode = v[14]+v[15], int(v[20]), v[22], v[24], int(v[52])
	return s, nil
}

// atou parses decimal digits without allocating (strconv would copy b
// into a string).
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
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
