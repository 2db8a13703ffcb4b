// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// TestHealthEndpointUnderIdleConnections: 2,000 keep-alive connections to
// pcheck's health listener, each left idle after one request, while pcheck
// runs under a file limit of 1024 and probes a healthy demoserver every
// second. pcheck never holds more than its cap of them (the rest wait in
// the kernel's queue and are served in turn as the idle ones are closed),
// its probes keep working (no stall is declared), and /healthz answers a
// fresh client. Before the cap pcheck accepted them all, ran out of file
// descriptors, and killed the healthy server as stalled.
func TestHealthEndpointUnderIdleConnections(t *testing.T) {
	testpriv.Root(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		testpriv.Unavailable(t, "no prlimit(1) (util-linux) to start pcheck under a file limit")
	}
	const clients, limit, cap = 2000, 1024, 64 // cap: --http-max-conns's default fits in 1024
	raiseOwnFileLimit(t, clients+512)

	d := newDemo(t, false)
	sc := newScene(t)
	check := stallCheck{lib: "webserv", interval: 10, duration: 10, timeout: 2, port: d.port}
	pf := d.writePfile(t, sc.dir, "demo", check)
	master := d.run(t)
	health := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startPcheckWrapped(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", limit, limit), "--"},
		sc.syslog, sc.dir, "auto", "--health-listen", health, pf)
	upWith(t, p, "demo", master)
	getHTTP(t, "http://"+health+"/healthz", "ok")
	checkState := func() control.CheckStatus {
		t.Helper()
		st, err := (&control.Client{Path: p.control}).Status(waitCtx(t), "demo")
		if err != nil || len(st) != 1 || len(st[0].Checks) != 1 {
			t.Fatalf("padmin status: %+v, %v", st, err)
		}
		return st[0].Checks[0]
	}
	pollUntil(t, "saw the stall check's first good round", func() bool { return checkState().State == "ok" })
	before := openFDs(t, p.pid())

	conns := make([]net.Conn, 0, clients)
	for range clients {
		c, err := net.Dial("tcp", health)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}

	// For the stall duration and two rounds more (30 s), the check stays ok, and
	// pcheck's descriptors grow by no more than the cap.
	most := before
	for end := time.Now().Add(time.Duration(check.duration+2*check.interval) * time.Second); time.Now().Before(end); {
		most = max(most, openFDs(t, p.pid()))
		if c := checkState(); c.State != "ok" || c.Stalls != 0 {
			t.Fatalf("with %d idle connections open the stall check is %+v: its probes failed", clients, c)
		}
		time.Sleep(50 * time.Millisecond) // sampling the fds over the window
	}
	// Besides the cap, a probe round's socket and sock_diag socket and a
	// status request's connection may be open at a sample: a few more.
	const transient = 8
	if most > before+cap+transient {
		t.Errorf("pcheck held %d file descriptors with %d connections waiting, %d before: more than the cap (%d) of them and %d in passing", most, clients, before, cap, transient)
	}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	getWith(t, fresh, "http://"+health+"/healthz", "ok")
	t.Logf("%d idle connections: pcheck's fds %d -> at most %d (cap %d); a fresh /healthz answered in %v",
		clients, before, most, cap, time.Since(start))
	if b, _ := os.ReadFile(d.pidFile); strings.TrimSpace(string(b)) != fmt.Sprint(master) || !alive(master) {
		t.Errorf("the demoserver was restarted (pid file %q, was %d)", b, master)
	}
}

// raiseOwnFileLimit makes room for n descriptors in the test itself.
func raiseOwnFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur, lim.Max = n, max(lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising the test's RLIMIT_NOFILE to %d: %v", n, err)
	}
}

// openFDs counts pid's open file descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
