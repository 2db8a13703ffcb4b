// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/vishvananda/netns"
)

// TestStallRule: the stall rule at the guide's edge, end to end (issue
// 22). The scenarios wait for 10 s intervals, so they run at once.
func TestStallRule(t *testing.T) {
	t.Parallel()
	testpriv.Root(t)
	concurrently(t, []stallScenario{
		{"interval=duration", stallStartTie},
		{"nginx-in-netns", stallNginxInNetns},
	})
}

// stallStartTie: interval = duration = 10 and a restart script that starts
// a server which listens 0.5 s after its exec. The first probe, at Up,
// fails; the second, due at Up + 10, falls on the starting window's
// deadline: it runs first, is answered, and the server stays Up (60 s, no
// stall). Stopped with SIGSTOP it is a stall 10 to 20 s later.
func stallStartTie(t *testing.T) {
	d := newDemo(t, false, "-bind-delay", "500ms")
	sc := newScene(t)
	c := stallCheck{lib: "webserv", interval: 10, duration: 10, timeout: 10, port: d.port}
	pf := d.writePfile(t, sc.dir, "web", c)
	first := d.run(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "web", first)

	// A restart by the script: Up comes at the exec, the port 0.5 s later.
	sendSignal(t, first, 9)
	got, err := p.lines(waitCtx(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	m := upLine.FindStringSubmatch(got[3])
	if got[0] != down("web", first) || m == nil || m[1] != "web" {
		t.Fatalf("pcheck logged %q, want the death of %d and a restart", got, first)
	}
	pid, _ := strconv.Atoi(m[2])
	d.expectRestarted(t, first, pid)

	// 60 s of rounds (six, the first at Up failed): no stall, same pid,
	// the block ok. The window is what is tested, not a wait for an event.
	upAt := time.Now()
	for time.Since(upAt) < 60*time.Second {
		if lines := p.allLines(); len(lines) != 4 {
			t.Fatalf("after %v pcheck logged %q: a healthy server is killed", time.Since(upAt).Round(time.Second), lines[4:])
		}
		time.Sleep(time.Second)
	}
	st := p.waitState(t, "web", "Up")
	if !slices.Equal(st.PIDs, []int{pid}) || len(st.Checks) != 1 || st.Checks[0].State != "ok" {
		t.Fatalf("after 60 s: %+v, want pid %d Up with its check ok", st, pid)
	}

	// SIGSTOP at h: the stall is within [h + 10, h + 20] s.
	h := time.Now()
	stopAll(t, []int{pid})
	got, err = p.lines(waitCtx(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(h)
	if got[4] != webStall(pid, d.port) {
		t.Fatalf("pcheck logged %q after the SIGSTOP, want the stall", got[4])
	}
	// A second of slack each way for the syslog hop and a loaded machine.
	if took < 10*time.Second-time.Second || took > 20*time.Second+time.Second {
		t.Fatalf("stall %v after the SIGSTOP, want 10 to 20 s", took)
	}
	t.Logf("SIGSTOP to stall line: %v", took.Round(time.Millisecond))
}

// stallNginxInNetns: nginx in a network namespace of the test's own, its
// port published on the host's loopback by a forwarder (as docker-proxy
// does: the forwarder's listener on the host holds the same port). Probed
// from the host it answers, and the listen check, asked inside nginx's
// namespace, finds nginx's listener there: it stays Up. Stopped with
// SIGSTOP, it is a stall as usual, killed and restarted in the namespace.
func stallNginxInNetns(t *testing.T) {
	srv := newServer(t, "nginx")
	ns := newNetns(t)
	publish(t, ns, srv.port)
	srv.script = append([]string{"ip", "netns", "exec", ns}, srv.script...)
	sc := newScene(t)
	c := stallCheck{lib: "webserv", interval: 10, duration: 10, timeout: 5, port: srv.port}
	reasons := filepath.Join(sc.dir, "reasons")
	pf := srv.writePfile(t, sc.dir, pfileOpts{script: withReasons(t, sc.dir, reasons, srv.script...)})
	appendFile(t, pf, c.block())
	if out, err := exec.Command(srv.script[0], srv.script[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(srv.script, " "), err, out)
	}
	master := srv.waitMaster(t, 0)
	getHTTP(t, srv.url(), srv.token)
	if here, there := netnsLink(t, os.Getpid()), netnsLink(t, master); here == there {
		t.Fatalf("nginx runs in pcheck's network namespace (%s)", here)
	}
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "nginx", master)

	// Three durations of rounds: no stall (the old listen check saw only
	// the forwarder's listener on the port, not nginx's, and killed it).
	upAt := time.Now()
	for time.Since(upAt) < 35*time.Second {
		if lines := p.allLines(); len(lines) != 0 {
			t.Fatalf("pcheck logged %q: nginx answers, its listener is in its namespace", lines)
		}
		time.Sleep(time.Second)
	}
	st := p.waitState(t, "nginx", "Up")
	if len(st.Checks) != 1 || st.Checks[0].State != "ok" || st.Checks[0].Backlog <= 0 {
		t.Fatalf("after 35 s: %+v, want the check ok with nginx's listener seen", st.Checks)
	}
	if strings.Contains(p.stderr.String(), "listen check skipped") {
		t.Fatalf("the listen check was skipped:\n%s", p.stderr.String())
	}

	stopAll(t, []int{master})
	workers := srv.workers(t, master)
	stopAll(t, workers)
	next := expectStallRecovery(t, p, 0, "nginx", webStall(master, srv.port), master)
	for _, w := range workers {
		waitGone(t, w)
	}
	if real := srv.waitMaster(t, master); real != next {
		t.Fatalf("pcheck says nginx is up with pid %d, the pid file says %d", next, real)
	}
	getHTTP(t, srv.url(), srv.token)
	if got := netnsLink(t, next); got == netnsLink(t, os.Getpid()) {
		t.Fatalf("nginx restarted outside its namespace")
	}
	expectReasons(t, reasons, "stall")
}

// newNetns creates a network namespace of the test's own (ip netns, a
// name of this test run), its loopback up, deleted at the end.
func newNetns(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		testpriv.Unavailable(t, "ip (iproute2) is not installed")
	}
	name := fmt.Sprintf("pwatch-e2e-%d-%d", os.Getpid(), freePort(t))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		testpriv.Unavailable(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return name
}

// publish forwards 127.0.0.1:port on the host to 127.0.0.1:port in the
// namespace ns, each connection dialled from inside it.
func publish(t *testing.T, ns string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	path := filepath.Join("/run/netns", ns)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				in, err := dialIn(path, fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return
				}
				defer in.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(in, c); in.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, in); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			})
		}
	})
}

// dialIn dials addr from inside the network namespace at path, on a
// locked thread handed back only once it is in ours again.
func dialIn(path, addr string) (net.Conn, error) {
	type dialled struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialled, 1)
	go func() {
		runtime.LockOSThread()
		self, err := netns.Get()
		if err != nil {
			ch <- dialled{nil, err}
			return
		}
		defer self.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- dialled{nil, err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ch <- dialled{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if netns.Set(self) == nil {
			runtime.UnlockOSThread()
		}
		ch <- dialled{c, err}
	}()
	d := <-ch
	return d.c, d.err
}

// netnsLink names pid's network namespace ("net:[INODE]").
func netnsLink(t *testing.T, pid int) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
