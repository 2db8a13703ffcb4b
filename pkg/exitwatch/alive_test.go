// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"testing"

	"github.com/pwatch/pwatch/pkg/proc"
)

func TestDecodeWaitStatus(t *testing.T) {
	for _, c := range []struct {
		ws, status, signal int
		core               bool
	}{
		{0, 0, 0, false},
		{3 << 8, 3, 0, false},
		{9, 0, 9, false},
		{11 | 0x80, 0, 11, true},
	} {
		status, signal, core := decodeWaitStatus(c.ws)
		if status != c.status || signal != c.signal || core != c.core {
			t.Errorf("decodeWaitStatus(%#x) = %d, %d, %v", c.ws, status, signal, core)
		}
	}
}

func TestCheckAliveOfVanishedPID(t *testing.T) {
	// pid_max is at most 2^22, so this pid never exists.
	alive, ev := checkAlive("/proc", procID(1<<23, 1))
	if alive || ev.Kind != Exit || ev.Known {
		t.Errorf("checkAlive of a pid that cannot exist = %v, %+v", alive, ev)
	}
}

func procID(pid int, start uint64) proc.ID { return proc.ID{PID: pid, StartTime: start} }
