// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// The AutoReboot set (pfile/autoreboot-apache2.pfile, README.autoreboot.md,
// scripts/restart/autoreboot.retry-over) on a live apache2, with the
// harness's injected reboot command (rebootRig) and a load balancer that
// polls pcheck's /healthz.

// balancer is the L4 switch of the guide's section 2.4: it polls a health
// URL and keeps the node in while the URL answers 200. It records each
// change of its mind.
type balancer struct {
	url  string
	mu   sync.Mutex
	seen []bool // true: node in; one entry per change
	done chan struct{}
	wg   sync.WaitGroup
}

func newBalancer(t testing.TB, url string) *balancer {
	b := &balancer{url: url, done: make(chan struct{})}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	b.wg.Go(func() {
		for {
			resp, err := client.Get(url)
			in := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			b.mu.Lock()
			if len(b.seen) == 0 || b.seen[len(b.seen)-1] != in {
				b.seen = append(b.seen, in)
			}
			b.mu.Unlock()
			select {
			case <-b.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	t.Cleanup(b.stop)
	return b
}

func (b *balancer) stop() {
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	b.wg.Wait()
}

// history is the node's states as the balancer saw them, oldest first.
func (b *balancer) history() []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// wait waits until the balancer has the node in (or out).
func (b *balancer) wait(t testing.TB, in bool) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("saw the balancer take the node %s (%s)", map[bool]string{true: "in", false: "out"}[in], b.url), func() bool {
		h := b.history()
		return len(h) > 0 && h[len(h)-1] == in
	})
}

// TestAutoReboot: the guide's section 2.4, end to end. Apache hangs, and
// a fault that no restart cures (a stand-in: its configuration no longer
// loads) keeps it from coming back. pcheck declares the stall, kills it,
// tries retry_count times, and at retry over runs the retry-over script
// (which keeps the evidence) and reboots the node through the guard. The
// balancer takes the node out at the stall and keeps it out. The reboot
// (simulated: pcheck stopped, every process of the node gone, the fault
// gone with them) brings up a pcheck that starts Apache; the balancer puts
// the node back.
func TestAutoReboot(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	const name = "autoreboot-apache2"
	srv := newServer(t, "apache2")
	sc := newScene(t)
	rig := newRebootRig(t, sc)
	records := filepath.Join(sc.dir, "records")
	healthAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	flags := append(rig.flags(3, 3600), "--health-listen", healthAddr)

	pf := autoRebootPfile(t, sc, srv, name, records)

	master := srv.start(t)
	p := startPcheckFlags(t, sc, flags, pf)
	upWith(t, p, name, master)
	lb := newBalancer(t, "http://"+healthAddr+"/healthz/"+name)
	lb.wait(t, true)

	// The fault, then the hang: the master first (a stopped master forks
	// no new worker), then its workers.
	conf := filepath.Join(srv.dir, "httpd.conf")
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, conf, string(good)+"ThisIsNotAnApacheDirective on\n", 0o644)
	stopAll(t, []int{master})
	stopAll(t, srv.workers(t, master))

	want := []string{webStall(master, srv.port), killedProc(master), down(name, master), ended(name, master, stallKilled)}
	for range 3 {
		want = append(want, tryRestart(name), setPidFail(name))
	}
	want = append(want, retryOver(name, "reboot"))
	p.expectLines(t, want...)
	rig.waitCount(t, 1)
	p.waitState(t, name, "RetryOver")
	lb.wait(t, false)
	if got, want := p.padminOK(t, "reboot-count").out, "1 of 3 automatic reboots within 3600s\n"; got != want {
		t.Fatalf("padmin reboot-count printed %q, want %q", got, want)
	}
	expectRetryOverRecord(t, p, name, records)

	// The reboot: pcheck ends, so does every other process, and the fault
	// with them. The node stays out of the balancer throughout.
	rig.reboot(t, p)
	srv.killAll()
	writeFile(t, conf, string(good), 0o644)

	p = startPcheckFlags(t, sc, flags, pf)
	got, err := p.lines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	m := upLine.FindStringSubmatch(got[1])
	if got[0] != tryRestart(name) || m == nil || m[1] != name {
		t.Fatalf("after the reboot pcheck logged %q, want %q then %q", got, tryRestart(name), up(name, 0))
	}
	next := srv.waitMaster(t, master)
	if m[2] != fmt.Sprint(next) {
		t.Fatalf("pcheck says %s is up with pid %s, the pid file says %d", name, m[2], next)
	}
	getHTTP(t, srv.url(), srv.token)
	lb.wait(t, true)
	if h := lb.history(); !slices.Equal(h, []bool{true, false, true}) {
		t.Fatalf("the balancer saw the node %v (true: in), want in, out, in: it must not come back before Apache does", h)
	}
	if got, want := p.padminOK(t, "reboot-count").out, "1 of 3 automatic reboots within 3600s\n"; got != want {
		t.Fatalf("after the reboot padmin reboot-count printed %q, want %q", got, want)
	}
	rig.expectCount(t, 1)
	for _, m := range sc.syslog.Messages() {
		t.Logf("syslog: %s", m.Raw)
	}
}

// autoRebootPfile writes the apache2 template for srv: this instance's
// options, its port, a stall within 10 s (the template's 60 s would only
// make the test slower) and 1 s between attempts (the template's 10 s,
// likewise), with the retry-over script keeping its records in records.
func autoRebootPfile(t *testing.T, sc *scene, srv *server, name, records string) (pf string) {
	t.Helper()
	src := templatePfile(t, name+".pfile")
	src = setKey(t, src, "args", srv.args)
	src = setKey(t, src, "restart_script", strings.Join(srv.script, " "))
	src = setKey(t, src, "retry_over_script", strings.Join(append(
		[]string{template("autoreboot.retry-over"), "-d", records}, srv.script[1:]...), " "))
	src = setKey(t, src, "retry_interval", "1")
	src = setExec(t, src, 10, 10, srv.port)
	pf = filepath.Join(sc.dir, name+".pfile")
	writeFile(t, pf, src, 0o644)
	return pf
}

// expectRetryOverRecord checks that the retry-over script ran before the
// reboot and kept why Apache would not start, and that its output, in
// pcheck's log, says where.
func expectRetryOverRecord(t *testing.T, p *pcheckRun, name, records string) {
	t.Helper()
	saved, _ := filepath.Glob(filepath.Join(records, "*-"+name, "configtest"))
	if len(saved) != 1 {
		t.Fatalf("the retry-over script kept %v, want one record with a configtest", saved)
	}
	if b, _ := os.ReadFile(saved[0]); !strings.Contains(string(b), "ThisIsNotAnApacheDirective") {
		t.Fatalf("the record's configtest does not name the bad directive:\n%s", b)
	}
	note := regexp.MustCompile(regexp.QuoteMeta(name+" not recovered: rebooting; the state before the reboot is in "+records+"/") + `\S+-` + regexp.QuoteMeta(name))
	if !note.MatchString(p.stderr.String()) {
		t.Fatalf("pcheck's log has no line of the retry-over script matching %s:\n%s", note, p.stderr.String())
	}
}
