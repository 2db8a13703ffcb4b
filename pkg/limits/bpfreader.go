// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/pwatch/pwatch/internal/bpfload"
	"github.com/pwatch/pwatch/pkg/proc"
)

// BPFReader reads every sampled process's counters in one pass of a BPF
// task iterator (bpf/sampler.bpf.c): one read of a few system calls for
// the whole sample instead of two system calls and a lock of the process
// per pid, which on 10,000 pids cost more than the 1 % of a core the
// sampler may use (BenchmarkLimitSampler). The kernel keeps to the pids
// in its map, which follows the requests from one sample to the next (a
// batch update of what changed). PSS, and processes beyond what the map
// holds, are read from /proc. Not safe for concurrent use.
type BPFReader struct {
	objs  samplerObjects
	iter  *link.Iter
	page  uint64
	slow  *ProcReader
	in    map[uint32]bool    // the pids now in the kernel's map
	want  map[uint32]Request // this read's processes
	buf   []byte
	keys  []uint32
	flags []uint8
}

// NewBPFReader loads and attaches the iterator. It fails where the kernel
// cannot run it (no BPF, no BTF, a kernel before 6.2's counters): pcheck
// then reads /proc with a ProcReader.
func NewBPFReader(procRoot string) (*BPFReader, error) {
	return newBPFReader(procRoot, 0)
}

// newBPFReader is NewBPFReader with room for maxSampled pids in the
// kernel's map (0: the compiled 65,536; tests make it small).
func newBPFReader(procRoot string, maxSampled uint32) (_ *BPFReader, err error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	slow, err := NewProcReader(procRoot)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			slow.Close()
		}
	}()
	spec, err := loadSampler()
	if err != nil {
		return nil, err
	}
	if maxSampled != 0 {
		spec.Maps[samplerMapSampled].MaxEntries = maxSampled
	}
	if err := bpfload.Prepare(spec, procRoot); err != nil {
		return nil, err
	}
	r := &BPFReader{page: uint64(os.Getpagesize()), slow: slow, in: map[uint32]bool{}, want: map[uint32]Request{}}
	if err := spec.LoadAndAssign(&r.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading the sampler's BPF program: %+v", ve)
		}
		return nil, fmt.Errorf("loading the sampler's BPF program: %w", err)
	}
	if r.iter, err = link.AttachIter(link.IterOptions{Program: r.objs.SampleTasks}); err != nil {
		r.objs.Close()
		return nil, fmt.Errorf("attaching the sampler's task iterator: %w", err)
	}
	return r, nil
}

// Close detaches the iterator and frees its map.
func (r *BPFReader) Close() {
	r.iter.Close()
	r.objs.Close()
	r.slow.Close()
}

// Read reads the counters of every request into got.
func (r *BPFReader) Read(reqs []Request, got map[proc.ID]Counters) {
	clear(got)
	clear(r.want)
	for _, q := range reqs {
		r.want[uint32(q.ID.PID)] = q
	}
	rest := r.follow()
	if err := r.pass(got); err != nil {
		// Nothing was read: every process is read from /proc instead.
		rest = reqs
	}
	if len(rest) > 0 {
		more := map[proc.ID]Counters{}
		r.slow.Read(rest, more)
		for id, c := range more {
			got[id] = c
		}
	}
}

// EndSample closes the /proc files of the processes read there.
func (r *BPFReader) EndSample() { r.slow.EndSample() }

// PSS reads smaps_rollup (pkg/limits' ProcReader).
func (r *BPFReader) PSS(id proc.ID) (uint64, error) { return r.slow.PSS(id) }

// follow makes the kernel's map hold this read's pids: what came is
// added and what went is deleted, in one batch each. It returns the
// requests the map had no room for.
func (r *BPFReader) follow() []Request {
	r.keys = r.keys[:0]
	for pid := range r.in {
		if _, ok := r.want[pid]; !ok {
			r.keys = append(r.keys, pid)
			delete(r.in, pid)
		}
	}
	if len(r.keys) > 0 {
		_, _ = r.objs.Sampled.BatchDelete(r.keys, nil) // a pid missing from the map is no harm
	}
	r.keys, r.flags = r.keys[:0], r.flags[:0]
	var rest []Request
	for pid, q := range r.want {
		if r.in[pid] {
			continue
		}
		if len(r.in)+len(r.keys) >= int(r.objs.Sampled.MaxEntries()) {
			rest = append(rest, q)
			delete(r.want, pid)
			continue
		}
		r.keys, r.flags = append(r.keys, pid), append(r.flags, 1)
	}
	if len(r.keys) == 0 {
		return rest
	}
	n, err := r.objs.Sampled.BatchUpdate(r.keys, r.flags, nil)
	for _, pid := range r.keys[:max(n, 0)] {
		r.in[pid] = true
	}
	if err != nil { // those not added are read from /proc
		for _, pid := range r.keys[max(n, 0):] {
			rest = append(rest, r.want[pid])
			delete(r.want, pid)
		}
	}
	return rest
}

// sampleSize is the size of one record of the iterator.
const sampleSize = int(unsafe.Sizeof(samplerSample{}))

// pass runs the iterator once and adds its records into got: each
// thread's CPU time to its process's, and the group leader's threads,
// memory and descriptors. A process whose leader the pass did not meet,
// or met with another start time (its pid reused), is not in got.
func (r *BPFReader) pass(got map[proc.ID]Counters) error {
	f, err := r.iter.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	if r.buf, err = readAll(f, r.buf[:0]); err != nil {
		return err
	}
	if len(r.buf)%sampleSize != 0 {
		return fmt.Errorf("the sampler's iterator wrote %d bytes, not whole records", len(r.buf))
	}
	// The records are the kernel's copies of samplerSample, in this
	// host's byte order; the buffer is 8-byte aligned (Go's allocator).
	recs := unsafe.Slice((*samplerSample)(unsafe.Pointer(unsafe.SliceData(r.buf))), len(r.buf)/sampleSize)
	for i := range recs {
		s := &recs[i]
		q, ok := r.want[s.Tgid]
		id := q.ID
		if !ok || (id.StartTime != 0 && s.StartTime != id.StartTime) {
			continue
		}
		c := got[id]
		c.CPU += time.Duration(s.RuntimeNs)
		if s.Leader != 0 {
			c.CPU += time.Duration(s.ExitedNs)
			c.Threads, c.RSS, c.FDs = int(max(s.Threads, 1)), s.RssPages*r.page, int(s.Fds)
		}
		got[id] = c
	}
	for id, c := range got {
		if c.Threads == 0 { // threads seen, but not their leader
			delete(got, id)
		}
	}
	return nil
}

// readAll reads f to its end into buf, growing it: unlike io.ReadAll it
// keeps the buffer from one sample to the next.
func readAll(f io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(cap(buf), 64<<10))...)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
