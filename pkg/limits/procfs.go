// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/pkg/proc"
)

// ProcReader reads the counters from /proc. What every sample reads of
// every process (stat, and the size of the fd directory) is read into a
// buffer it keeps and parsed by hand: through os.File and procfs's parser
// it cost ten times as much (BenchmarkLimitSampler). Each process's stat
// stays open from one sample to the next (one pread a sample instead of
// open, read and close), up to a quarter of RLIMIT_NOFILE; the open file
// is the process's own, never a later one's with its pid. The rare read,
// smaps_rollup, goes through procfs. A ProcReader is not safe for
// concurrent use (the one sampler uses it).
type ProcReader struct {
	root string
	fs   procfs.FS
	buf  []byte
	page uint64
	// kept are the open stat files, used marks those read since the
	// last EndSample; keep bounds how many stay open.
	kept map[proc.ID]int
	used map[proc.ID]bool
	keep int
}

// NewProcReader reads under the proc mount root ("" is /proc).
func NewProcReader(root string) (*ProcReader, error) {
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	pfs, err := procfs.NewFS(root)
	if err != nil {
		return nil, err
	}
	keep := 0
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		keep = int(min(lim.Cur/4, 1<<20))
	}
	return &ProcReader{
		root: root, fs: pfs, buf: make([]byte, 4096), page: uint64(os.Getpagesize()),
		kept: map[proc.ID]int{}, used: map[proc.ID]bool{}, keep: keep,
	}, nil
}

// EndSample closes the stat files of the processes not read since the
// last call (gone, or no longer in a sampled tree).
func (r *ProcReader) EndSample() {
	for id, fd := range r.kept {
		if !r.used[id] {
			syscall.Close(fd)
			delete(r.kept, id)
		}
	}
	clear(r.used)
}

// Close closes every kept file.
func (r *ProcReader) Close() {
	clear(r.used)
	r.EndSample()
}

// readStat reads id's stat: with its kept file, else by opening it
// (and keeping it while the budget allows).
func (r *ProcReader) readStat(id proc.ID, dir string) (int, error) {
	r.used[id] = true
	if fd, ok := r.kept[id]; ok {
		n, err := syscall.Pread(fd, r.buf, 0)
		if err == nil && n > 0 {
			return n, nil
		}
		syscall.Close(fd) // the process is gone (ESRCH)
		delete(r.kept, id)
		return 0, fmt.Errorf("pid %d: %w", id.PID, proc.ErrGone)
	}
	fd, err := syscall.Open(dir+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, gone(err)
	}
	n, err := syscall.Read(fd, r.buf)
	if err != nil || len(r.kept) >= r.keep || id.StartTime == 0 {
		syscall.Close(fd)
	} else {
		r.kept[id] = fd // kept only once its start time is checked (Read)
	}
	if err != nil {
		return 0, gone(err)
	}
	return n, nil
}

// Read reads every request's counters into got, one process at a time.
func (r *ProcReader) Read(reqs []Request, got map[proc.ID]Counters) {
	clear(got)
	for _, q := range reqs {
		if c, err := r.read(q.ID, q.FDs); err == nil {
			got[q.ID] = c
		}
	}
}

// read reads id's stat (CPU ticks, threads, RSS) and, with fds, its open
// descriptors. A pid that now holds another process (its start time
// differs) is an error: it is not the service's.
func (r *ProcReader) read(id proc.ID, fds bool) (Counters, error) {
	dir := r.root + "/" + strconv.Itoa(id.PID)
	n, err := r.readStat(id, dir)
	if err != nil {
		return Counters{}, err
	}
	c, start, err := parseStat(r.buf[:n], r.page)
	if err == nil && id.StartTime != 0 && start != id.StartTime {
		err = proc.ErrGone
	}
	if err != nil {
		if fd, ok := r.kept[id]; ok { // not the process it was kept for
			syscall.Close(fd)
			delete(r.kept, id)
		}
		return Counters{}, fmt.Errorf("pid %d: %w", id.PID, err)
	}
	if fds {
		if c.FDs, err = r.fdCount(id.PID, dir); err != nil {
			return Counters{}, err
		}
	}
	return c, nil
}

// PSS is id's proportional set size from smaps_rollup: its private pages,
// and its share of those it shares.
func (r *ProcReader) PSS(id proc.ID) (uint64, error) {
	p, err := r.fs.Proc(id.PID)
	if err != nil {
		return 0, err
	}
	m, err := p.ProcSMapsRollup()
	if err != nil {
		return 0, err
	}
	return m.Pss, nil
}

// fdCount is the size of /proc/PID/fd, which is the number of open
// descriptors since Linux 6.2; where it is 0 (older kernels, or truly
// none), the directory is counted.
func (r *ProcReader) fdCount(pid int, dir string) (int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir+"/fd", &st); err != nil {
		return 0, gone(err)
	}
	if st.Size > 0 {
		return int(st.Size), nil
	}
	p, err := r.fs.Proc(pid)
	if err != nil {
		return 0, err
	}
	return p.FileDescriptorsLen()
}

// gone folds ESRCH (a process that ended between open and read) into
// fs.ErrNotExist, as ENOENT.
func gone(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// parseStat reads utime, stime (fields 14, 15), num_threads (20),
// starttime (22) and rss (24, pages) of a stat line. comm (field 2) may
// hold spaces and parentheses: fields are counted from its last ')'.
func parseStat(b []byte, page uint64) (Counters, uint64, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || end+2 >= len(b) {
		return Counters{}, 0, fmt.Errorf("malformed stat %q", b)
	}
	var v [22]uint64 // fields 3 to 24
	rest := b[end+2:]
	for i := range v {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		if f := i + 3; f == 14 || f == 15 || f == 20 || f == 22 || f == 24 {
			n, ok := atou(rest[:j])
			if !ok {
				return Counters{}, 0, fmt.Errorf("stat field %d: %q is not a number", f, rest[:j])
			}
			v[i] = n
		}
		rest = rest[j:]
	}
	c := Counters{CPU: proc.TicksDuration(v[14-3] + v[15-3]), Threads: int(v[20-3]), RSS: v[24-3] * page}
	return c, v[22-3], nil
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
