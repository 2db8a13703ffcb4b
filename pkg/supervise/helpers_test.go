// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func killPID(t *testing.T, pid string) {
	t.Helper()
	n, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatalf("bad pid %q", pid)
	}
	_ = syscall.Kill(n, syscall.SIGKILL)
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never written", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until pid has exited: gone, or a zombie nobody reaped yet.
func waitGone(t *testing.T, pid string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
