// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// pfile/sunone.pfile and scripts/restart/sunone.restart against a stand-in
// of Oracle iPlanet Web Server 7 (test/webservd-standin): only the
// process shape is tested, watchdog, then primordial, then workers, as the
// vendor documents it; the real server was never run.

var standin struct {
	once sync.Once
	err  error
}

// standinExe builds the stand-in once per test run and returns its path.
func standinExe(t testing.TB) string {
	t.Helper()
	standin.once.Do(func() { standin.err = build(bin.dir, "./test/webservd-standin") })
	if standin.err != nil {
		t.Fatalf("building the webservd stand-in: %v", standin.err)
	}
	return filepath.Join(bin.dir, "webservd-standin")
}

// webServer7 is one install of the stand-in with one instance, laid out
// as the vendor's: ROOT/lib/webservd-wdog and ROOT/lib/webservd, the
// instance ROOT/https-test with bin/startserv, config/ and logs/, and its
// temp directory (where the primordial writes its pid).
type webServer7 struct {
	root, instance, config, temp string
	wdog, webservd               string
	port                         int
}

func newWebServer7(t testing.TB) *webServer7 {
	t.Helper()
	testpriv.Root(t)
	dir := shortDir(t)
	w := &webServer7{root: filepath.Join(dir, "webserver7"), temp: filepath.Join(dir, "tmp-https-test"), port: freePort(t)}
	w.instance = filepath.Join(w.root, "https-test")
	w.config = filepath.Join(w.instance, "config")
	w.wdog, w.webservd = filepath.Join(w.root, "lib", "webservd-wdog"), filepath.Join(w.root, "lib", "webservd")
	for _, d := range []string{filepath.Join(w.root, "lib"), filepath.Join(w.instance, "bin"), w.config, filepath.Join(w.instance, "logs"), w.temp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := standinExe(t)
	copyFile(t, exe, w.wdog)
	copyFile(t, exe, w.webservd)
	writeFile(t, filepath.Join(w.config, "port"), fmt.Sprintln(w.port), 0o644)
	// startserv as the vendor's behaves: it starts the watchdog, which
	// stays behind as a daemon, and returns once the server has started.
	writeFile(t, filepath.Join(w.instance, "bin", "startserv"), fmt.Sprintf(`#!/bin/sh
# Stand-in of Web Server 7's INSTANCE/bin/startserv.
rm -f %[4]s/pid
setsid -f %[1]s/lib/webservd-wdog -d %[2]s -r %[1]s -t %[4]s </dev/null >>%[3]s/logs/errors 2>&1
i=0
while [ ! -s %[4]s/pid ]; do
	i=$((i + 1))
	[ $i -lt 600 ] || { echo "failure: server did not start" >&2; exit 1; }
	sleep 0.1
done
echo "info: successful server startup"
`, w.root, w.config, w.instance, w.temp), 0o755)
	// stopserv as the vendor's is used: it stops the server whose
	// primordial the pid file names, even with its watchdog gone.
	writeFile(t, filepath.Join(w.instance, "bin", "stopserv"), fmt.Sprintf(`#!/bin/sh
# Stand-in of Web Server 7's INSTANCE/bin/stopserv.
pid=$(cat %[2]s/pid 2>/dev/null) || { echo "info: server is not running"; exit 1; }
[ "$(readlink /proc/$pid/exe)" = %[1]s/lib/webservd ] || { echo "info: server is not running"; exit 1; }
kill -TERM "$pid"
i=0
while [ -e /proc/$pid ] && [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" != Z ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "failure: server did not stop" >&2; exit 1; }
	sleep 0.1
done
rm -f %[2]s/pid
echo "info: server was stopped"
`, w.root, w.temp), 0o755)
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"errors", "startserv.out"} {
				b, _ := os.ReadFile(filepath.Join(w.instance, "logs", f))
				t.Logf("%s/logs/%s:\n%s", w.instance, f, b)
			}
			for _, pid := range pidsWhere(w.ours) {
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				t.Logf("left running: %s", stat)
			}
		}
		killWhere(w.ours)
	})
	return w
}

func (w *webServer7) ours(pid int) bool { return runs(w.wdog)(pid) || runs(w.webservd)(pid) }

func (w *webServer7) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", w.port) }

func (w *webServer7) answer() string { return "webservd stand-in of " + w.config }

func (w *webServer7) script() []string {
	return []string{template("sunone.restart"), w.instance}
}

// writePfile writes sunone.pfile into dir: the template, with this
// install's paths and port.
func (w *webServer7) writePfile(t testing.TB, dir string) string {
	t.Helper()
	src := templatePfile(t, "sunone.pfile")
	src = setKey(t, src, "process", w.wdog)
	src = setKey(t, src, "args", "-d "+regexp.QuoteMeta(w.config)+"( |$)")
	src = setKey(t, src, "restart_script", strings.Join(w.script(), " "))
	src = setExec(t, src, 30, 180, w.port)
	path := filepath.Join(dir, "sunone.pfile")
	writeFile(t, path, src, 0o644)
	return path
}

// shape waits until the instance runs one watchdog other than oldWdog,
// with one primordial other than oldPrimordial, with two workers, all
// running the right executable, and returns them.
func (w *webServer7) shape(t testing.TB, oldWdog, oldPrimordial int) (wdog, primordial int, workers []int) {
	t.Helper()
	pollUntil(t, "saw the Web Server 7 stand-in's watchdog, primordial and two workers", func() bool {
		wd := pidsWhere(runs(w.wdog))
		if len(wd) != 1 || wd[0] == oldWdog {
			return false
		}
		prim := children(wd[0])
		if len(prim) != 1 || prim[0] == oldPrimordial || !runs(w.webservd)(prim[0]) {
			return false
		}
		ws := children(prim[0])
		if len(ws) != 2 || !runs(w.webservd)(ws[0]) || !runs(w.webservd)(ws[1]) {
			return false
		}
		wdog, primordial, workers = wd[0], prim[0], ws
		return true
	})
	return wdog, primordial, workers
}

// TestSunOne: the watchdog is the service. A primordial killed is the
// watchdog's to replace: pcheck logs nothing (the sentinel: the next
// kill's Down is pcheck's first line). The watchdog killed is Down;
// what is left below it, the primordial it started since pcheck adopted
// it and that one's workers, would keep the port: pcheck does not know
// them (another executable than the pfile's, started after its scan), so
// sunone.restart's stopserv stops them before its startserv. The new
// watchdog is Up with a whole new tree that answers.
func TestSunOne(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	w := newWebServer7(t)
	sc := newScene(t)
	pf := w.writePfile(t, sc.dir)
	if out, err := exec.Command(w.script()[0], w.script()[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(w.script(), " "), err, out)
	}
	wdog, primordial, _ := w.shape(t, 0, 0)
	getHTTP(t, w.url(), w.answer())
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "sunone", wdog)

	kill9(t, primordial)
	waitGone(t, primordial)
	_, primordial, workers := w.shape(t, 0, primordial)
	getHTTP(t, w.url(), w.answer())
	upWith(t, p, "sunone", wdog)

	kill9(t, wdog)
	got, err := p.lines(waitCtx(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{down("sunone", wdog), ended("sunone", wdog, killedBy9), tryRestart("sunone")}; !slices.Equal(got[:3], want) {
		t.Fatalf("pcheck logged:\n\t%s\nwant:\n\t%s\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"), up("sunone", 0))
	}
	for _, pid := range append([]int{primordial}, workers...) {
		waitGone(t, pid)
	}
	next, _, _ := w.shape(t, wdog, primordial)
	if m := upLine.FindStringSubmatch(got[3]); m == nil || m[1] != "sunone" || m[2] != fmt.Sprint(next) {
		t.Fatalf("pcheck logged %q, want %q", got[3], up("sunone", next))
	}
	getHTTP(t, w.url(), w.answer())
	upWith(t, p, "sunone", next)
	for _, m := range sc.syslog.Messages() {
		t.Logf("syslog: %s", m.Raw)
	}
}
