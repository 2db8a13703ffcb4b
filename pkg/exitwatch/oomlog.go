package exitwatch

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/proc"
)

// oomLog reads the OOM killer's reports from the kernel log (/dev/kmsg):
// which process it killed, its memory cgroup and resident memory. It is
// read on demand, when a SIGKILL death is reported: the kernel logs the
// kill right after sending SIGKILL and before the victim can exit, so the
// report is there by then. On every backend this tells an OOM kill from
// another SIGKILL (ebpf also knows from its tracepoint, and takes the
// details from here).
type oomLog struct {
	mu      sync.Mutex
	f       *os.File
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
	return &oomLog{f: f, memcgs: map[int]string{}}, nil
}

func (l *oomLog) close() error { return l.f.Close() }

// oomLogDrainEvery keeps the log read between deaths, so that the read at
// a death (on the death path) finds little to parse.
const oomLogDrainEvery = 5 * time.Second

// keepDrained reads the log every oomLogDrainEvery until stop closes.
func (l *oomLog) keepDrained(stop <-chan struct{}) {
	t := time.NewTicker(oomLogDrainEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.drain()
			l.mu.Unlock()
		}
	}
}

// lookup takes the report of the OOM kill of id, if the kernel logged one:
// its pid, and logged after id started (a reused pid's process started
// later than its kill).
func (l *oomLog) lookup(id proc.ID) (OOMKill, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drain()
	startNs := id.StartTime * 10_000_000 // USER_HZ ticks
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
		n, err := syscall.Read(int(l.f.Fd()), buf)
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

var (
	// oom-kill:constraint=CONSTRAINT_MEMCG,...,task_memcg=/web,task=alloc,pid=123,uid=0
	oomKillLine = regexp.MustCompile(`oom-kill:.*task_memcg=([^,]*),task=.*,pid=(\d+),`)
	// Memory cgroup out of memory: Killed process 123 (alloc) total-vm:..kB, anon-rss:1kB, file-rss:2kB, shmem-rss:3kB, ...
	killedLine = regexp.MustCompile(`Killed process (\d+) \(.*\) total-vm:\d+kB, anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB`)
)

// record parses one kmsg record: "PRI,SEQ,TS_USEC,FLAGS;MESSAGE\n".
func (l *oomLog) record(rec string) {
	head, text, ok := strings.Cut(rec, ";")
	if !ok {
		return
	}
	fields := strings.Split(head, ",")
	if len(fields) < 3 {
		return
	}
	usec, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return
	}
	text, _, _ = strings.Cut(text, "\n")
	if !strings.Contains(text, "oom-kill:") && !strings.Contains(text, "Killed process") {
		return // most records: no regular expression for them
	}
	if m := oomKillLine.FindStringSubmatch(text); m != nil {
		pid, _ := strconv.Atoi(m[2])
		if len(l.memcgs) > maxOOMReports {
			clear(l.memcgs)
		}
		l.memcgs[pid] = m[1]
		return
	}
	m := killedLine.FindStringSubmatch(text)
	if m == nil {
		return
	}
	pid, _ := strconv.Atoi(m[1])
	var rss int64
	for _, s := range m[2:] {
		kb, _ := strconv.ParseInt(s, 10, 64)
		rss += kb
	}
	l.reports = append(l.reports, oomReport{pid: pid, memcg: l.memcgs[pid], rssKiB: rss, atNs: usec * 1000})
	delete(l.memcgs, pid)
	if len(l.reports) > maxOOMReports {
		l.reports = l.reports[len(l.reports)-maxOOMReports:]
	}
}
