package exitwatch

import (
	"strings"
	"testing"

	"github.com/pwatch/pwatch/pkg/proc"
)

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses; fields count from the last ')'.
	f := make([]string, 53) // f[n] is field n
	for i := range f {
		f[i] = "0"
	}
	f[3], f[9], f[20], f[22], f[52] = "S", "4194308", "3", "12345", "2304"
	line := "42 (a) b (c) " + strings.Join(f[3:], " ") + "\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{State: 'S', Flags: 4194308, Threads: 3, StartTime: 12345, ExitCode: 2304}
	if st != want {
		t.Errorf("parseStat = %+v, want %+v", st, want)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) ", "42 (x) S 1 2"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted a malformed line", bad)
		}
	}
}

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
