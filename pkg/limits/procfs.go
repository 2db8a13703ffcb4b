// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/pkg/proc"
)

// ProcReader reads the counters from /proc, where the BPF iterator cannot
// load. What every sample reads of every process (stat, and the size of
// the fd directory) is read into a buffer it keeps and parsed by
// proc.ParseStat: through os.File and procfs's parser it cost ten times as
// much (BenchmarkLimitSampler). Each process's stat
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
	st, err := proc.ParseStat(r.buf[:n])
	if err == nil && id.StartTime != 0 && st.StartTime != id.StartTime {
		err = proc.ErrGone
	}
	c := Counters{CPU: proc.TicksDuration(st.CPUTicks), Threads: st.Threads, RSS: st.RSSPages * r.page}
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
