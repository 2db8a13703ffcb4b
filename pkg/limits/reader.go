// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"log/slog"
	"runtime/debug"

	"github.com/pwatch/pwatch/pkg/proc"
)

// AutoReader is pcheck's Reader: at its first read it loads the BPF task
// iterator (BPFReader), or, where that cannot load, reads /proc
// (ProcReader), and says which once. Nothing is loaded while no service
// has limits (the sampler never reads). Not safe for concurrent use.
type AutoReader struct {
	procRoot string
	log      *slog.Logger
	warned   bool
	r        interface {
		Reader
		EndSample()
		Close()
	}
}

// NewAutoReader reads under procRoot ("" is /proc), logging its choice to log.
func NewAutoReader(procRoot string, log *slog.Logger) *AutoReader {
	return &AutoReader{procRoot: procRoot, log: log}
}

func (a *AutoReader) open() error {
	if a.r != nil {
		return nil
	}
	b, err := NewBPFReader(a.procRoot)
	if err == nil {
		// The load decoded the kernel's BTF: megabytes that are garbage
		// now; give them back at once, as after exitwatch's load.
		debug.FreeOSMemory()
		a.log.Info("limits: sampling through a BPF task iterator")
		a.r = b
		return nil
	}
	p, perr := NewProcReader(a.procRoot)
	if perr != nil {
		return perr
	}
	a.log.Info("limits: sampling through /proc, one process at a time", "why_not_bpf", err)
	a.r = p
	return nil
}

// Read reads through the chosen reader; with none (no /proc) it reads nothing.
func (a *AutoReader) Read(reqs []Request, got map[proc.ID]Counters) {
	if err := a.open(); err != nil {
		clear(got)
		if !a.warned {
			a.log.Warn("limits: no counters", "error", err)
			a.warned = true
		}
		return
	}
	a.r.Read(reqs, got)
}

// PSS reads smaps_rollup.
func (a *AutoReader) PSS(id proc.ID) (uint64, error) {
	if err := a.open(); err != nil {
		return 0, err
	}
	return a.r.PSS(id)
}

// EndSample ends a sample of the chosen reader.
func (a *AutoReader) EndSample() {
	if a.r != nil {
		a.r.EndSample()
	}
}

// Close closes the chosen reader.
func (a *AutoReader) Close() {
	if a.r != nil {
		a.r.Close()
		a.r = nil
	}
}
