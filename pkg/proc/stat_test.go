// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses; fields count from the last ')'.
	f := make([]string, 53) // f[n] is field n
	for i := range f {
		f[i] = "0"
	}
	f[3], f[4], f[5], f[6], f[9], f[20], f[22], f[52] = "S", "7", "40", "41", "4194308", "3", "12345", "2304"
	f[14], f[15], f[24] = "250", "75", "2048"
	line := "42 (a) b (c) " + strings.Join(f[3:], " ") + "\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{Comm: "a) b (c", State: 'S', PPID: 7, PGID: 40, SID: 41, Flags: 4194308, CPUTicks: 325,
		Threads: 3, StartTime: 12345, RSSPages: 2048, ExitCode: 2304}
	if st != want {
		t.Errorf("ParseStat = %+v, want %+v", st, want)
	}
	// An exiting task whose signal state is gone shows pgrp and session
	// as -1 (do_task_stat's defaults): its stat must still be read, or
	// the death of a watched group is lost.
	f[3], f[4], f[5], f[6], f[20] = "Z", "0", "-1", "-1", "1"
	st, err = ParseStat([]byte("42 (a) " + strings.Join(f[3:], " ") + "\n"))
	if err != nil {
		t.Fatalf("the stat of an exiting task: %v", err)
	}
	if st.PGID != -1 || st.SID != -1 || st.State != 'Z' || st.StartTime != 12345 || !st.GroupGone() {
		t.Errorf("the stat of an exiting task = %+v", st)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) ", "42 (x) S 1 2", "42 (x) S 1 -2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21", "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 -1 13 14 15 16 17 18 19 20 21"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted a malformed line", bad)
		}
	}
}

func TestGroupGone(t *testing.T) {
	for _, c := range []struct {
		st   Stat
		gone bool
	}{
		{Stat{State: 'S', Threads: 1}, false},
		{Stat{State: 'Z', Threads: 1}, true},
		{Stat{State: 'X', Threads: 0}, true},
		// A leader that called pthread_exit while two threads run.
		{Stat{State: 'Z', Threads: 3}, false},
	} {
		if got := c.st.GroupGone(); got != c.gone {
			t.Errorf("%+v.GroupGone() = %v, want %v", c.st, got, c.gone)
		}
	}
}

func TestCheckAliveSelfAndReused(t *testing.T) {
	st, err := ReadStat("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self := ID{PID: os.Getpid(), StartTime: st.StartTime}
	if life, _ := CheckAlive("/proc", self); life != Running {
		t.Errorf("CheckAlive(self) = %v, want Running", life)
	}
	reused := ID{PID: self.PID, StartTime: self.StartTime + 1}
	if life, _ := CheckAlive("/proc", reused); life != Gone {
		t.Errorf("CheckAlive of a reused pid = %v, want Gone", life)
	}
	// pid_max is at most 2^22, so this pid never exists.
	if life, _ := CheckAlive("/proc", ID{PID: 1 << 23, StartTime: 1}); life != Gone {
		t.Errorf("CheckAlive of a pid that cannot exist = %v, want Gone", life)
	}
}

// WaitExited returns once the process has exited (here a zombie nobody
// reaped yet), not before, and at once for one already gone.
func TestWaitExited(t *testing.T) {
	cmd := exec.Command("/usr/bin/sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	st, err := ReadStat("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	id := ID{PID: cmd.Process.Pid, StartTime: st.StartTime}
	tbl, err := NewTable("/proc", nil)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := tbl.WaitExited(short, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitExited of a running process: %v, want the deadline", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := tbl.WaitExited(t.Context(), id); err != nil {
		t.Fatalf("WaitExited after the kill: %v", err)
	}
	if life, _ := CheckAlive("/proc", id); life == Running {
		t.Fatal("WaitExited returned while the process runs")
	}
	if err := tbl.WaitExited(t.Context(), ID{PID: 1 << 23, StartTime: 1}); err != nil {
		t.Fatalf("WaitExited of a pid that cannot exist: %v", err)
	}
}
