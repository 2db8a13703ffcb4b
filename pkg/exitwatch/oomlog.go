// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"github.com/pwatch/pwatch/pkg/proc"
)

// oomLog reads the OOM killer's reports from the kernel log (/dev/kmsg):
// which process it killed, its memory cgroup and resident memory. It is
// read as the kernel writes it (keepDrained sleeps until a record comes),
// and once more when a SIGKILL death is reported: the kernel logs the
// kill right after sending SIGKILL and before the victim can exit, so the
// report is there by then. On every backend this tells an OOM kill from
// another SIGKILL (ebpf also knows from its tracepoint, and takes the
// details from here).
type oomLog struct {
	mu      sync.Mutex
	f       *os.File // non-blocking, in Go's poller
	fd      int
	memcgs  map[int]string // pid -> memcg, from oom-kill: lines awaiting their Killed line
	reports []oomReport    // newest last, at most maxOOMReports
}

type oomReport struct {
	pid    int
	memcg  string
	rssKiB int64
	atNs   uint64 // the log's timestamp: ns since boot
}

const maxOOMReports = 64

// openOOMLog opens the kernel log at its end: earlier kills are not ours.
func openOOMLog() (*oomLog, error) {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, 2); err != nil { // SEEK_END: only what comes
		f.Close()
		return nil, err
	}
	return &oomLog{f: f, fd: int(f.Fd()), memcgs: map[int]string{}}, nil
}

// close ends keepDrained.
func (l *oomLog) close() error { return l.f.Close() }

// keepDrained reads each record as the kernel logs it, until close, so
// that the read at a death (on the death path) finds little to parse. It
// sleeps in Go's poller between records: no timer wakes it.
func (l *oomLog) keepDrained() {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(uintptr) bool {
		l.mu.Lock()
		l.drain()
		l.mu.Unlock()
		return false // all read: wait until the log is readable again
	})
}

// lookup takes the report of the OOM kill of id, if the kernel logged one:
// its pid, and logged after id started (a reused pid's process started
// later than its kill).
func (l *oomLog) lookup(id proc.ID) (OOMKill, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drain()
	startNs := uint64(proc.TicksDuration(id.StartTime))
	for i := len(l.reports) - 1; i >= 0; i-- {
		r := l.reports[i]
		if r.pid == id.PID && startNs <= r.atNs {
			l.reports = append(l.reports[:i], l.reports[i+1:]...)
			return OOMKill{Memcg: r.memcg, RSSKiB: r.rssKiB}, true
		}
	}
	return OOMKill{}, false
}

// drain reads every record the kernel logged since the last read.
func (l *oomLog) drain() {
	buf := make([]byte, 8192) // a record is at most 8 KiB (PRINTK_MESSAGE_MAX)
	for {
		n, err := syscall.Read(l.fd, buf)
		switch {
		case errors.Is(err, syscall.EPIPE):
			continue // records were overwritten before we read them
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil || n <= 0:
			return // EAGAIN: all read
		}
		l.record(string(buf[:n]))
	}
}

// record takes one kmsg record that is part of an OOM report
// (parseOOMRecord): the summary's memcg waits for its Killed line.
func (l *oomLog) record(rec string) {
	r, ok := parseOOMRecord(rec)
	switch {
	case !ok:
		return
	case !r.killed:
		if len(l.memcgs) > maxOOMReports {
			clear(l.memcgs)
		}
		l.memcgs[r.pid] = r.memcg
		return
	}
	l.reports = append(l.reports, oomReport{pid: r.pid, memcg: l.memcgs[r.pid], rssKiB: r.rssKiB, atNs: r.atNs})
	delete(l.memcgs, r.pid)
	if len(l.reports) > maxOOMReports {
		l.reports = l.reports[len(l.reports)-maxOOMReports:]
	}
}
