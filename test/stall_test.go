// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/sockdiag"
)

// TestStall: the stall checks end to end, against real nginx and our own
// demoserver, with the real minimum interval of 10 s (a stall takes 10 to
// 40 s of real time, so the scenarios run concurrently). A scenario that
// must show something does not happen bounds its window by an event of
// another service of the same pcheck, never by a sleep.
func TestStall(t *testing.T) {
	t.Parallel()
	testpriv.Root(t)
	concurrently(t, []stallScenario{
		{"nginx/http", func(t *testing.T) { stallNginx(t, false) }},
		{"nginx/https", func(t *testing.T) { stallNginx(t, true) }},
		{"slow-not-killed", stallSlowNotKilled},
		{"error1", stallErrorOne},
		{"listen/closed", stallListenerClosed},
		{"listen/accept-queue-full", stallAcceptQueueFull},
		{"sample1", func(t *testing.T) { stallSample(t, 1) }},
		{"sample2", func(t *testing.T) { stallSample(t, 2) }},
		{"sample3", func(t *testing.T) { stallSample(t, 3) }},
	})
}

// stallNginx: kill -STOP of every nginx process (the port stays bound and
// queues connections, nobody answers) is a web server stall after duration:
// the master is killed, restarted with PWATCH_REASON=stall, and answers.
func stallNginx(t *testing.T, https bool) {
	srv := newServer(t, "nginx")
	sc := newScene(t)
	c := stallCheck{lib: "webserv", interval: 10, duration: 10, timeout: 5, port: srv.port}
	var roots *x509.CertPool
	get := func() { getHTTP(t, srv.url(), srv.token) }
	if https {
		roots = nginxTLS(t, srv)
		c.lib, c.duration = "webservs", 20
		get = func() { getHTTPS(t, fmt.Sprintf("https://127.0.0.1:%d/", srv.port), srv.token, roots) }
	}
	reasons := filepath.Join(sc.dir, "reasons")
	pf := srv.writePfile(t, sc.dir, pfileOpts{script: withReasons(t, sc.dir, reasons, srv.script...)})
	appendFile(t, pf, c.block())
	if out, err := exec.Command(srv.script[0], srv.script[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(srv.script, " "), err, out)
	}
	master := srv.waitMaster(t, 0)
	get()
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "nginx", master)

	// The master first: a stopped master forks no new worker.
	stopAll(t, []int{master})
	workers := srv.workers(t, master)
	stopAll(t, workers)
	next := expectStallRecovery(t, p, 0, "nginx", webStall(master, srv.port), master)
	c.expectOnTime(t, p, "nginx", 0)
	for _, w := range workers {
		waitGone(t, w)
	}
	if real := srv.waitMaster(t, master); real != next {
		t.Fatalf("pcheck says nginx is up with pid %d, the pid file says %d", next, real)
	}
	get()
	upWith(t, p, "nginx", next)
	expectReasons(t, reasons, "stall")
}

// stallSlowNotKilled: a server that answers after 3 s, within the probe
// timeout of 5 s, is never taken for stalled. The window: the slow
// service's rounds run at U, U+10, U+20, U+30 from its Up U; two failures
// in a row among them would log its stall by U+35 (+5 s timeout). The
// sentinel, adopted at the same moment and hung after, needs 20 s of failed
// rounds (+2 s timeout) for each of its two stalls, the second counted at
// the latest from its restart: it comes after U+44.
func stallSlowNotKilled(t *testing.T) {
	slow, hung := newDemo(t, false, "-delay", "3s"), newDemo(t, false)
	sc := newScene(t)
	hungCheck := stallCheck{lib: "webserv", interval: 10, duration: 20, timeout: 2, port: hung.port}
	pfSlow := slow.writePfile(t, sc.dir, "slow", stallCheck{lib: "webserv", interval: 10, duration: 10, timeout: 5, port: slow.port})
	pfHung := hung.writePfile(t, sc.dir, "hung", hungCheck)
	slowPID, hungPID := slow.run(t), hung.run(t)
	// The premise: it is slow.
	start := time.Now()
	slow.get(t)
	if took := time.Since(start); took < 3*time.Second {
		t.Fatalf("the slow server answered in %v, want at least its -delay of 3s", took)
	}
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pfSlow, pfHung)
	upWith(t, p, "slow", slowPID)
	upWith(t, p, "hung", hungPID)

	for i := range 2 {
		sendSignal(t, hungPID, syscall.SIGUSR1)
		next := expectStallRecovery(t, p, 6*i, "hung", webStall(hungPID, hung.port), hungPID)
		hungCheck.expectOnTime(t, p, "hung", i)
		hung.expectRestarted(t, hungPID, next)
		hungPID = next
	}
	upWith(t, p, "slow", slowPID)
	if lines := p.allLines(); len(lines) != 12 {
		t.Fatalf("pcheck logged %d lines, want the sentinel's 12 alone:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
	}
	expectReasons(t, slow.reasons)
	expectReasons(t, hung.reasons, "stall", "stall")
}

// stallErrorOne: PS_EXEC error 1 stops a block's checks after its first
// detection: the restarted server, hung again, is left alone (death
// watching goes on). The window starts when it is hung again at T; were it
// still checked, its next round (by T+10) and the one after would fail, its
// stall logged by T+22. The sentinel, hung at T, needs 20 s of failed
// rounds (+2 s timeout) for each of its two stalls, the second counted at
// the latest from its restart (a restarted server fails the round at its Up
// until it listens): the second comes after T+44.
func stallErrorOne(t *testing.T) {
	once, sentinel := newDemo(t, false), newDemo(t, false)
	sc := newScene(t)
	onceCheck := stallCheck{lib: "webserv", interval: 10, stopAfter: 1, duration: 10, timeout: 2, port: once.port}
	sentinelCheck := stallCheck{lib: "webserv", interval: 10, duration: 20, timeout: 2, port: sentinel.port}
	pfOnce := once.writePfile(t, sc.dir, "once", onceCheck)
	pfSentinel := sentinel.writePfile(t, sc.dir, "sentinel", sentinelCheck)
	oncePID, sentinelPID := once.run(t), sentinel.run(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pfOnce, pfSentinel)
	upWith(t, p, "once", oncePID)
	upWith(t, p, "sentinel", sentinelPID)

	sendSignal(t, oncePID, syscall.SIGUSR1)
	next := expectStallRecovery(t, p, 0, "once", webStall(oncePID, once.port), oncePID)
	onceCheck.expectOnTime(t, p, "once", 0)
	once.expectRestarted(t, oncePID, next)
	oncePID = next

	sendSignal(t, oncePID, syscall.SIGUSR1)
	for i := range 2 {
		sendSignal(t, sentinelPID, syscall.SIGUSR1)
		next := expectStallRecovery(t, p, 6+6*i, "sentinel", webStall(sentinelPID, sentinel.port), sentinelPID)
		sentinelCheck.expectOnTime(t, p, "sentinel", i)
		sentinel.expectRestarted(t, sentinelPID, next)
		sentinelPID = next
	}
	expectNoAnswer(t, once.url())
	upWith(t, p, "once", oncePID)
	expectReasons(t, once.reasons, "stall")
	expectReasons(t, sentinel.reasons, "stall", "stall")
}

// stallListenerClosed: a server that closes its listening socket and lives
// on fails the tcp probe (connection refused) and the listen check (no
// LISTEN socket): a socket service stall, restarted with
// PWATCH_REASON=socket.
func stallListenerClosed(t *testing.T) {
	d := newDemo(t, false)
	sc := newScene(t)
	c := stallCheck{lib: "socket", interval: 10, duration: 10, timeout: 2, port: d.port, extra: []string{"listen_check yes"}}
	pf := d.writePfile(t, sc.dir, "closed", c)
	pid := d.run(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "closed", pid)

	sendSignal(t, pid, syscall.SIGUSR2)
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)
	pollUntil(t, "saw "+addr+" refuse connections", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if !alive(pid) {
		t.Fatalf("demoserver %d died on SIGUSR2, want it living without its listener", pid)
	}
	next := expectStallRecovery(t, p, 0, "closed", socketStall(pid, d.port), pid)
	c.expectOnTime(t, p, "closed", 0)
	expectStallError(t, p, "closed", sockdiag.ErrNoListener.Error())
	d.expectRestarted(t, pid, next)
	upWith(t, p, "closed", next)
	expectReasons(t, d.reasons, "socket")
}

// stallAcceptQueueFull: a server that runs but no longer accepts, its
// accept queue filled by clients, is a socket service stall found by
// listen_check (the kernel's accept queue full).
func stallAcceptQueueFull(t *testing.T) {
	d := newDemo(t, false, "-backlog", "2")
	sc := newScene(t)
	c := stallCheck{lib: "socket", interval: 10, duration: 10, timeout: 2, port: d.port, extra: []string{"listen_check yes"}}
	pf := d.writePfile(t, sc.dir, "queue", c)
	pid := d.run(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "queue", pid)

	sendSignal(t, pid, syscall.SIGUSR1)
	fillAcceptQueue(t, d.port)
	if st := procState(pid); st != 'S' && st != 'R' {
		t.Fatalf("demoserver %d is in state %q, want running (S or R) with its queue full", pid, st)
	}
	next := expectStallRecovery(t, p, 0, "queue", socketStall(pid, d.port), pid)
	c.expectOnTime(t, p, "queue", 0)
	expectStallError(t, p, "queue", sockdiag.ErrAcceptQueueFull.Error())
	d.expectRestarted(t, pid, next)
	upWith(t, p, "queue", next)
	expectReasons(t, d.reasons, "socket")
}

// stallSample: the seed's sample pfiles, with only their process entry,
// interval (60 -> 10), duration (600 -> 20) and port rewritten, detect a
// stall of a demoserver: hung for http and https; hung with its accept
// queue filled for tcp (a hung server's port still takes connections until
// then).
func stallSample(t *testing.T, n int) {
	name := fmt.Sprintf("sample%d", n)
	var (
		d      *demoServer
		stall  = webStall
		reason = "stall"
	)
	switch n {
	case 1:
		d = newDemo(t, false)
	case 2:
		d = newDemo(t, false, "-backlog", "2")
		stall, reason = socketStall, "socket"
	case 3:
		d = newDemo(t, true)
	}
	sc := newScene(t)
	seedPath := filepath.Join(repoRoot(), "pfile", name+".pfile")
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	f := sampleFields{process: d.exe, script: strings.Join(d.script, " "), interval: "10", duration: "20", port: strconv.Itoa(d.port)}
	rewritten := rewriteSample(t, string(seed), f)
	expectOnlyRewritten(t, string(seed), rewritten, f)
	pf := filepath.Join(sc.dir, name+".pfile")
	writeFile(t, pf, rewritten, 0o644)
	// The effective rules are the seed's but for the rewritten values.
	want := rulesOf(t, seedPath)
	want["process"] = d.exe
	want["restart_script"] = toAny(d.script)
	check := want["checks"].([]any)[0].(map[string]any)
	check["interval"], check["duration"], check["port"] = 10.0, 20.0, float64(d.port)
	if got := rulesOf(t, pf); !reflect.DeepEqual(got, want) {
		t.Fatalf("the rewritten sample's rules are\n\t%v\nwant\n\t%v", got, want)
	}

	pid := d.run(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, name, pid)
	sendSignal(t, pid, syscall.SIGUSR1)
	if n == 2 {
		fillAcceptQueue(t, d.port)
	}
	next := expectStallRecovery(t, p, 0, name, stall(pid, d.port), pid)
	stallCheck{interval: 10, duration: 20}.expectOnTime(t, p, name, 0)
	d.expectRestarted(t, pid, next)
	upWith(t, p, name, next)
	expectReasons(t, d.reasons, reason)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestStallDemoserverHang: the premise of the hang scenarios. A hung
// demoserver (SIGUSR1) answers nothing, also not on connections it had
// accepted before: a client that keeps its connection alive (a browser
// watching the demo) must see the hang too. Each of several such
// connections is asked once.
func TestStallDemoserverHang(t *testing.T) {
	t.Parallel()
	d := newDemo(t, false)
	pid := d.run(t)
	const conns = 16
	clients := make([]*http.Client, conns)
	for i := range clients {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		clients[i] = &http.Client{Timeout: 2 * time.Second, Transport: tr}
		resp, err := clients[i].Get(d.url())
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	sendSignal(t, pid, syscall.SIGUSR1)
	// The hang has taken effect once a new connection goes unanswered.
	expectNoAnswer(t, d.url())
	var answered atomic.Int32
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if resp, err := c.Get(d.url()); err == nil {
				resp.Body.Close()
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	if n := answered.Load(); n != 0 {
		t.Fatalf("the hung demoserver answered %d of %d requests on connections it accepted before SIGUSR1", n, conns)
	}
}
