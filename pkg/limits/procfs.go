// SPDX-License-Identifier: Apache-2.0

package limits

import (
	"fmt"

	"github.com/prometheus/procfs"

	"github.com/pwatch/pwatch/pkg/proc"
)

// ProcReader reads the counters from /proc through procfs.
type ProcReader struct{ fs procfs.FS }

// NewProcReader reads under the proc mount root ("" is /proc).
func NewProcReader(root string) (*ProcReader, error) {
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, err
	}
	return &ProcReader{fs: fs}, nil
}

// Read reads id's stat (CPU ticks, threads) and, as want asks, its PSS
// (smaps_rollup) and open descriptors. A pid that now holds another
// process (its start time differs) is an error: it is not the service's.
func (r *ProcReader) Read(id proc.ID, want Want) (Counters, error) {
	p, err := r.fs.Proc(id.PID)
	if err != nil {
		return Counters{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return Counters{}, err
	}
	if id.StartTime != 0 && st.Starttime != id.StartTime {
		return Counters{}, fmt.Errorf("pid %d: %w", id.PID, proc.ErrGone)
	}
	c := Counters{CPUTicks: uint64(st.UTime) + uint64(st.STime), Threads: st.NumThreads}
	if want.Memory {
		m, err := p.ProcSMapsRollup()
		if err != nil {
			return Counters{}, err
		}
		c.PSS = m.Pss
	}
	if want.FDs {
		if c.FDs, err = p.FileDescriptorsLen(); err != nil {
			return Counters{}, err
		}
	}
	return c, nil
}
