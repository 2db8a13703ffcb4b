// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
)

// follower is a `padmin events --follow --json` this test started.
type follower struct {
	cmd *exec.Cmd
	evs chan events.Event
}

func startFollower(t *testing.T, p *pcheckRun, args ...string) *follower {
	t.Helper()
	all := append([]string{"--control-socket", p.control, "events", "--follow", "--json"}, args...)
	f := &follower{cmd: exec.Command(bin.padmin, all...), evs: make(chan events.Event, 1000)}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	f.cmd.Stderr = &stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.evs)
		dec := json.NewDecoder(out)
		for {
			var e events.Event
			if dec.Decode(&e) != nil {
				return
			}
			f.evs <- e
		}
	}()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		f.cmd.Wait()
		if t.Failed() {
			t.Logf("padmin events --follow stderr: %s", stderr.String())
		}
	})
	return f
}

// next waits for the first event that passes ok.
func (f *follower) next(t *testing.T, what string, ok func(events.Event) bool) events.Event {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case e, open := <-f.evs:
			if !open {
				t.Fatalf("padmin events --follow ended before %s", what)
			}
			if ok(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("padmin events --follow never showed %s", what)
		}
	}
}

// listEvents is `padmin events --json ARGS...` of p.
func listEvents(t *testing.T, p *pcheckRun, args ...string) []events.Event {
	t.Helper()
	all := append([]string{"--control-socket", p.control, "events", "--json"}, args...)
	out, err := exec.Command(bin.padmin, all...).Output()
	if err != nil {
		t.Fatalf("padmin events: %v", err)
	}
	var evs []events.Event
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var e events.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("padmin events --json: %v in %q", err, out)
		}
		evs = append(evs, e)
	}
	return evs
}

// waitEvents polls padmin events --json until ok holds of the list.
func waitEvents(t *testing.T, p *pcheckRun, what string, ok func([]events.Event) bool) []events.Event {
	t.Helper()
	var evs []events.Event
	pollUntil(t, what, func() bool {
		evs = listEvents(t, p)
		return ok(evs)
	})
	return evs
}

// showEvents logs `padmin events` as an operator sees it.
func showEvents(t *testing.T, p *pcheckRun, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin.padmin, append([]string{"--control-socket", p.control, "events"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("padmin events: %v\n%s", err, out)
	}
	t.Logf("padmin events %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func isEvent(name string, pid int) func(events.Event) bool {
	return func(e events.Event) bool { return e.Event == name && (pid == 0 || e.PID == pid) }
}

// TestEventsFollowAndSurviveSIGKILL: padmin events --follow sees a kill -9's
// Down, its restart and the Up, in that order; the history then survives
// a SIGKILL of pcheck: the next pcheck lists the events from before, and
// numbers its own after them.
func TestEventsFollowAndSurviveSIGKILL(t *testing.T) {
	srv := newServer(t, "nginx")
	sc := newScene(t)
	pf := srv.writePfile(t, sc.dir, pfileOpts{})
	master := srv.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "nginx", master)

	f := startFollower(t, p, "--service", "nginx")
	f.next(t, "the adoption at start (the backlog)", isEvent("adopted", 0))
	kill9(t, master)
	down := f.next(t, "the Down", isEvent("down", master))
	restart := f.next(t, "the restart", isEvent("restart", 0))
	upEv := f.next(t, "the Up", isEvent("up", 0))
	if !(down.Seq < restart.Seq && restart.Seq < upEv.Seq) || upEv.PID == master || restart.Fields["reason"] != "down" {
		t.Fatalf("followed down %+v, restart %+v, up %+v", down, restart, upEv)
	}
	if real := srv.waitMaster(t, master); real != upEv.PID {
		t.Fatalf("the Up event names pid %d, the pid file %d", upEv.PID, real)
	}
	before := listEvents(t, p)
	showEvents(t, p, "--service", "nginx")

	p.cmd.Process.Kill() // SIGKILL: nothing of pcheck's own shutdown runs
	<-p.exited
	second := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, second, "nginx", upEv.PID)
	last := before[len(before)-1].Seq
	after := waitEvents(t, second, "the second pcheck's adoption", func(evs []events.Event) bool {
		return slices.ContainsFunc(evs, func(e events.Event) bool { return e.Seq > last && e.Event == "adopted" })
	})
	if len(after) <= len(before) {
		t.Fatalf("after the SIGKILL pcheck lists %d events, before it %d", len(after), len(before))
	}
	for i, e := range before {
		if after[i].Seq != e.Seq || after[i].Text != e.Text || !after[i].Time.Equal(e.Time) {
			t.Fatalf("event %d was %+v before the SIGKILL, is %+v after", i, e, after[i])
		}
	}
	adopted := after[len(before)]
	if adopted.Seq != before[len(before)-1].Seq+1 || adopted.Event != "adopted" || adopted.Fields["pids"] != fmt.Sprintf("[%d]", upEv.PID) {
		t.Fatalf("the second pcheck's first event %+v does not follow seq %d", adopted, before[len(before)-1].Seq)
	}
	showEvents(t, second, "--since", "10m")
}

// TestEventHistoryCorruptOrTornIsSetAside: a history file that does not
// parse is reported (its name and line) and set aside, one torn at its
// end loses its last line only; pcheck starts either way.
func TestEventHistoryCorruptOrTornIsSetAside(t *testing.T) {
	srv := newServer(t, "nginx")
	sc := newScene(t)
	pf := srv.writePfile(t, sc.dir, pfileOpts{})
	master := srv.start(t)
	state := filepath.Join(sc.dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	line := func(seq int) string {
		return fmt.Sprintf(`{"seq":%d,"time":"2026-12-06T22:00:0%dZ","event":"up","service":"nginx","pid":%d,"text":"('nginx',pid=%d) Up"}`+"\n", seq, seq, seq, seq)
	}
	writeFile(t, filepath.Join(state, events.OldFile), line(1)+"{not json\n"+line(3), 0o600)
	writeFile(t, filepath.Join(state, events.File), line(4)+line(5)+`{"seq":6,"ti`, 0o600)

	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "nginx", master)
	logs := p.stderr.String()
	for _, want := range []string{
		"event history: the file is corrupt; set aside",
		"file=" + filepath.Join(state, events.OldFile) + " line=2",
		"event history: dropped a torn last line",
		"file=" + filepath.Join(state, events.File) + " line=3",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("pcheck's log lacks %q:\n%s", want, logs)
		}
	}
	if aside, _ := filepath.Glob(filepath.Join(state, events.OldFile+".corrupt-*")); len(aside) != 1 {
		t.Errorf("set aside: %v", aside)
	}
	evs := waitEvents(t, p, "the adoption", func(evs []events.Event) bool {
		return slices.ContainsFunc(evs, isEvent("adopted", 0))
	})
	if len(evs) < 3 || evs[0].Seq != 4 || evs[1].Seq != 5 || evs[2].Seq != 6 || evs[2].Event != "adopted" {
		t.Fatalf("history after the repair: %+v", evs)
	}
	showEvents(t, p)
}

// TestPadminRestart: padmin restart of an Up service goes through the
// recovery (Command execute., the kill, Try to restart with reason
// operator, Up with a new pid) and uses up no attempt; one not Up is
// refused.
func TestPadminRestart(t *testing.T) {
	srv := newServer(t, "nginx")
	sc := newScene(t)
	pf := srv.writePfile(t, sc.dir, pfileOpts{})
	master := srv.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "nginx", master)
	before := p.waitState(t, "nginx", "Up")

	out, err := exec.Command(bin.padmin, "--control-socket", p.control, "restart", "nginx").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "restarting nginx") {
		t.Fatalf("padmin restart: %v, %q", err, out)
	}
	got, err := p.lines(waitCtx(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	m := upLine.FindStringSubmatch(got[4])
	if got[0] != command("restart", "nginx") || got[1] != down("nginx", master) || got[3] != tryRestart("nginx") || m == nil || m[2] == fmt.Sprint(master) {
		t.Fatalf("after padmin restart pcheck logged %q", got)
	}
	next := srv.waitMaster(t, master)
	upWith(t, p, "nginx", next)
	after := p.waitState(t, "nginx", "Up")
	if after.Restarts != before.Restarts || after.AttemptsLeft != before.AttemptsLeft {
		t.Fatalf("restarts/attempts left %d/%d before, %d/%d after: padmin restart counted as an attempt",
			before.Restarts, before.AttemptsLeft, after.Restarts, after.AttemptsLeft)
	}
	evs := listEvents(t, p, "--service", "nginx")
	i := slices.IndexFunc(evs, isEvent("restart", 0))
	if i < 0 || evs[i].Fields["reason"] != "operator" {
		t.Fatalf("no restart with reason operator in %+v", evs)
	}
	showEvents(t, p, "--service", "nginx")

	// A service that is not Up is not restarted: the error names its state.
	p.padmin(t, "stop", "nginx")
	out, err = exec.Command(bin.padmin, "--control-socket", p.control, "restart", "nginx").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "paused") {
		t.Fatalf("padmin restart of a Paused service: exit %d, %q", code, out)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestSlowFollowerDoesNotSlowPcheck: a follower that never reads loses
// events (dropped, counted in the stream and in pcheck's log), and
// pcheck's recoveries and answers go on as if it were not there.
func TestSlowFollowerDoesNotSlowPcheck(t *testing.T) {
	srv := newServer(t, "nginx")
	sc := newScene(t)
	pf := srv.writePfile(t, sc.dir, pfileOpts{})
	master := srv.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "nginx", master)

	conn, err := net.Dial("unix", p.control)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	json.NewEncoder(conn).Encode(control.Request{Command: control.CommandEvents, Follow: true, Buffer: 1})
	r := bufio.NewReader(conn)
	if first, err := r.ReadBytes('\n'); err != nil || !strings.Contains(string(first), `"following":true`) {
		t.Fatalf("first answer %q, %v", first, err)
	}
	// From now on nothing is read. Reloads make events (Rules reloaded):
	// far more than a follower's queue and socket hold.
	const reloads = 300
	for i := 1; i <= reloads; i++ {
		syscall.Kill(p.pid(), syscall.SIGHUP)
		waitReloads(t, p, i)
	}
	kill9(t, master)
	start := time.Now()
	next := expectRestart(t, p, 0, srv, "nginx", master)
	t.Logf("%d events to a follower that reads nothing; then kill -9 to Up in %v", reloads, time.Since(start))
	upWith(t, p, "nginx", next)

	// Now read: what is queued comes, then new events again (a reload
	// made until one comes that is newer than the recovery), with the
	// count of those dropped meanwhile.
	evs := listEvents(t, p)
	newest := evs[len(evs)-1].Seq
	conn.SetReadDeadline(time.Now().Add(deadline))
	resps := make(chan control.Response)
	go func() {
		defer close(resps)
		dec := json.NewDecoder(r)
		for {
			var resp control.Response
			if dec.Decode(&resp) != nil {
				return
			}
			resps <- resp
		}
	}()
	received, dropped, caughtUp := 0, uint64(0), false
	for !caughtUp {
		select {
		case resp, ok := <-resps:
			if !ok {
				t.Fatalf("the stream ended after %d events (%d dropped)", received, dropped)
			}
			received, dropped = received+len(resp.Events), resp.Dropped
			caughtUp = slices.ContainsFunc(resp.Events, func(e events.Event) bool { return e.Seq > newest })
		case <-time.After(100 * time.Millisecond):
			syscall.Kill(p.pid(), syscall.SIGHUP) // one more event, until one gets through
		}
	}
	if dropped == 0 {
		t.Fatalf("the follower received %d events, none dropped", received)
	}
	conn.Close()
	logged := regexp.MustCompile(`events follower was too slow: events it was not sent" socket=\S+ dropped=(\d+)`)
	var m []string
	pollUntil(t, "pcheck logs the drops", func() bool {
		m = logged.FindStringSubmatch(p.stderr.String())
		return m != nil
	})
	if n, _ := strconv.ParseUint(m[1], 10, 64); n < dropped {
		t.Fatalf("pcheck logged %d dropped, the stream said %d", n, dropped)
	}
	t.Logf("follower received %d events, %d dropped; pcheck logged: %s", received, dropped, m[0])
}

// waitReloads waits until p has logged n reloads.
func waitReloads(t *testing.T, p *pcheckRun, n int) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("%d reloads", n), func() bool {
		return strings.Count(p.stderr.String(), "Rules reloaded (pfile='')") >= n
	})
}
