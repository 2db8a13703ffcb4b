// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// Tomcat 10 from Debian's package, live: the template pfile/tomcat.pfile
// and its restart script scripts/restart/tomcat.restart, run against an
// instance of the test's own (its own CATALINA_BASE, on a loopback port of
// its own, as user tomcat), never the package's.

const (
	tomcatHome = "/usr/share/tomcat10"
	// tomcatConf is the package's configuration, copied into each instance.
	tomcatConf = "/etc/tomcat10"
	// tomcatDeadline bounds the waits that span a JVM's start: a JVM
	// compiling a JSP on a loaded 2-core host takes its time.
	tomcatDeadline = 4 * time.Minute
)

// tomcat is one Tomcat instance. Its webapps are ROOT (a page holding
// token) and, when slow, "slow": a JSP loaded at deploy whose jspInit
// creates gate/deploying and then waits until gate/release exists, so
// that the test holds the deploy for as long as it wants.
type tomcat struct {
	base, gate string
	port       int
	token      string
	script     []string // restart_script: the template, with -b base
}

func newTomcat(t testing.TB, slow bool) *tomcat {
	t.Helper()
	testpriv.Root(t)
	if _, err := os.Stat(filepath.Join(tomcatHome, "bin", "catalina.sh")); err != nil {
		testpriv.Unavailable(t, "tomcat10 is not installed ("+tomcatHome+"): apt-get install tomcat10 default-jre-headless")
	}
	if _, err := user.Lookup("tomcat"); err != nil {
		testpriv.Unavailable(t, "no user tomcat (the tomcat10 package creates it): "+err.Error())
	}
	base := shortDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	tc := &tomcat{base: base, gate: filepath.Join(base, "gate"), port: freePort(t)}
	tc.token = fmt.Sprintf("pwatch-e2e-tomcat-%d", tc.port)
	tc.script = []string{template("tomcat.restart"), "-b", base}
	for _, d := range []string{"conf", "logs", "temp", "work", "webapps/ROOT", "gate"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"web.xml", "logging.properties", "catalina.properties", "context.xml"} {
		copyFile(t, filepath.Join(tomcatConf, f), filepath.Join(base, "conf", f))
		if err := os.Chmod(filepath.Join(base, "conf", f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The package's server.xml without its UserDatabase realm, on the
	// instance's port, loopback only; no shutdown port (as Debian's).
	writeFile(t, filepath.Join(base, "conf", "server.xml"), fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="%d" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
`, tc.port), 0o644)
	writeFile(t, filepath.Join(base, "webapps", "ROOT", "index.html"), tc.token+"\n", 0o644)
	if slow {
		if err := os.MkdirAll(filepath.Join(base, "webapps", "slow", "WEB-INF"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(base, "webapps", "slow", "WEB-INF", "web.xml"), `<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="5.0">
  <servlet>
    <servlet-name>slow</servlet-name>
    <jsp-file>/slow.jsp</jsp-file>
    <load-on-startup>1</load-on-startup>
  </servlet>
</web-app>
`, 0o644)
		writeFile(t, filepath.Join(base, "webapps", "slow", "slow.jsp"), fmt.Sprintf(`<%%! public void jspInit() {
	java.io.File gate = new java.io.File("%s");
	try {
		new java.io.File(gate, "deploying").createNewFile();
		while (!new java.io.File(gate, "release").exists()) Thread.sleep(100);
	} catch (Exception e) { throw new RuntimeException(e); }
} %%>slow deployed
`, tc.gate), 0o644)
	}
	// Tomcat writes its logs, work files and unpacked webapps.
	out, err := exec.Command("chown", "-R", "tomcat:tomcat",
		filepath.Join(base, "logs"), filepath.Join(base, "temp"), filepath.Join(base, "work"),
		filepath.Join(base, "webapps"), tc.gate).CombinedOutput()
	if err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	t.Cleanup(func() { killWhere(tc.ours) })
	return tc
}

func (tc *tomcat) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", tc.port) }

// ours reports whether pid is this instance's JVM.
func (tc *tomcat) ours(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "\x00-Dcatalina.base="+tc.base+"\x00")
}

// jvm waits until this instance runs exactly one JVM other than old, and
// returns it.
func (tc *tomcat) jvm(t testing.TB, old int) int {
	t.Helper()
	var pids []int
	pollUntil(t, "saw the Tomcat JVM of "+tc.base+" run", func() bool {
		pids = slices.DeleteFunc(pidsWhere(tc.ours), func(p int) bool { return p == old })
		return len(pids) > 0
	})
	if len(pids) != 1 {
		t.Fatalf("Tomcat of %s runs as %v, want one JVM", tc.base, pids)
	}
	return pids[0]
}

// release lets the slow webapp's deploy finish (and every later one).
func (tc *tomcat) release(t testing.TB) {
	t.Helper()
	writeFile(t, filepath.Join(tc.gate, "release"), "", 0o644)
}

// start starts Tomcat with its restart script, as an operator would, and
// returns its JVM once it answers.
func (tc *tomcat) start(t testing.TB) int {
	t.Helper()
	cmd := exec.Command(tc.script[0], tc.script[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(tc.script, " "), err, out)
	}
	pid := tc.jvm(t, 0)
	getHTTP(t, tc.url(), tc.token)
	return pid
}

// writePfile writes tomcat.pfile into dir: the template as shipped, but
// for what makes it this instance's (args also names its catalina.base,
// restart_script its -b, the check its port) and the check's interval and
// duration (the template's 30 s and 180 s would make a stall take minutes).
func (tc *tomcat) writePfile(t testing.TB, dir string, interval, duration int) string {
	t.Helper()
	src := templatePfile(t, "tomcat.pfile")
	src = editKey(t, src, "args", func(old string) string {
		return `-Dcatalina\.base=` + regexp.QuoteMeta(tc.base) + ` .*` + old
	})
	src = setKey(t, src, "restart_script", strings.Join(tc.script, " "))
	src = setExec(t, src, interval, duration, tc.port)
	path := filepath.Join(dir, "tomcat.pfile")
	writeFile(t, path, src, 0o644)
	return path
}

// tomcatLines waits, within tomcatDeadline, for pcheck's first n lines.
func tomcatLines(t testing.TB, p *pcheckRun, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tomcatDeadline)
	defer cancel()
	got, err := p.lines(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// logSyslog shows pcheck's syslog lines as they were sent (the test's -v
// output is the record of a live recovery).
func logSyslog(t testing.TB, p *pcheckRun) {
	t.Helper()
	for _, m := range p.syslog.Messages() {
		if m.Ident == "pcheck" && m.PID == p.pid() {
			t.Logf("syslog: %s", m.Raw)
		}
	}
}

// expectTomcatUp checks that line is name's Up, with the pid of the
// instance's new JVM (other than old), which answers HTTP; it returns it.
func expectTomcatUp(t *testing.T, tc *tomcat, line string, old int) int {
	t.Helper()
	m := upLine.FindStringSubmatch(line)
	if m == nil || m[1] != "tomcat" {
		t.Fatalf("pcheck logged %q, want %q", line, up("tomcat", 0)+" (any pid)")
	}
	pid, _ := strconv.Atoi(m[2])
	if real := tc.jvm(t, old); real != pid {
		t.Fatalf("pcheck says tomcat is up with pid %d, the instance's JVM is %d", pid, real)
	}
	getHTTP(t, tc.url(), tc.token)
	return pid
}

// TestTomcat: the template against a live Tomcat; the scenarios run at
// once (most of their time is the JVM's start and the stall check's
// rounds).
func TestTomcat(t *testing.T) {
	t.Parallel()
	testpriv.Root(t)
	concurrently(t, []stallScenario{
		{"kill", tomcatKill},
		{"stall", tomcatStall},
		{"slow-deploy", tomcatSlowDeploy},
	})
}

// tomcatKill: kill -9 of the JVM is Down; the restart script starts a new
// one and returns once Tomcat has started; it is Up and answers.
func tomcatKill(t *testing.T) {
	tc := newTomcat(t, false)
	sc := newScene(t)
	pf := tc.writePfile(t, sc.dir, 30, 180)
	jvm := tc.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "tomcat", jvm)

	kill9(t, jvm)
	got := tomcatLines(t, p, 4)
	want := []string{down("tomcat", jvm), ended("tomcat", jvm, killedBy9), tryRestart("tomcat")}
	if !slices.Equal(got[:3], want) {
		t.Fatalf("pcheck logged:\n\t%s\nwant:\n\t%s\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"), up("tomcat", 0))
	}
	next := expectTomcatUp(t, tc, got[3], jvm)
	upWith(t, p, "tomcat", next)
	logSyslog(t, p)
}

// tomcatStall: a stopped JVM (SIGSTOP: its port stays bound, nothing
// answers) is a web server stall after the check's duration: it is
// killed, restarted, and answers again.
func tomcatStall(t *testing.T) {
	tc := newTomcat(t, false)
	sc := newScene(t)
	c := stallCheck{interval: 10, duration: 20}
	pf := tc.writePfile(t, sc.dir, c.interval, c.duration)
	jvm := tc.start(t)
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "tomcat", jvm)

	stopAll(t, []int{jvm})
	expectNoAnswer(t, tc.url())
	got := tomcatLines(t, p, 6)
	want := []string{webStall(jvm, tc.port), killedProc(jvm), down("tomcat", jvm), ended("tomcat", jvm, stallKilled), tryRestart("tomcat")}
	if !slices.Equal(got[:5], want) {
		t.Fatalf("pcheck logged:\n\t%s\nwant:\n\t%s\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"), up("tomcat", 0))
	}
	c.expectOnTime(t, p, "tomcat", 0)
	next := expectTomcatUp(t, tc, got[5], jvm)
	upWith(t, p, "tomcat", next)
	logSyslog(t, p)
}

// tomcatSlowDeploy: after a kill, the new Tomcat takes longer to deploy
// than its stall check would need to declare a stall (interval 10 s,
// duration 10 s, probe timeout 10 s: a stall by 30 s of failed probes), but
// less than restart_timeout (180 s). That is no failure: the restart
// script waits for the deploy, pcheck waits for the script, and the
// service is Up once Tomcat answers, with no Set pid fail nor stall.
func tomcatSlowDeploy(t *testing.T) {
	const interval, duration, probeTimeout = 10, 10, 10
	hold := time.Duration(interval+duration+probeTimeout+5) * time.Second
	tc := newTomcat(t, true)
	sc := newScene(t)
	pf := tc.writePfile(t, sc.dir, interval, duration)
	tc.release(t)
	jvm := tc.start(t)
	getHTTP(t, tc.url()+"slow/slow.jsp", "slow deployed")
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", pf)
	upWith(t, p, "tomcat", jvm)

	for _, f := range []string{"release", "deploying"} {
		if err := os.Remove(filepath.Join(tc.gate, f)); err != nil {
			t.Fatal(err)
		}
	}
	kill9(t, jvm)
	got := tomcatLines(t, p, 3)
	if want := []string{down("tomcat", jvm), ended("tomcat", jvm, killedBy9), tryRestart("tomcat")}; !slices.Equal(got, want) {
		t.Fatalf("pcheck logged:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), tomcatDeadline)
	defer cancel()
	for {
		if _, err := os.Stat(filepath.Join(tc.gate, "deploying")); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the new Tomcat never reached the slow webapp's deploy (%s/deploying)", tc.gate)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The deploy is held: Tomcat takes connections but answers none, and
	// pcheck is still restarting.
	client := &http.Client{Timeout: 2 * time.Second}
	if resp, err := client.Get(tc.url()); err == nil {
		resp.Body.Close()
		t.Fatalf("Tomcat answered %s while its deploy was held", resp.Status)
	}
	if st := p.waitState(t, "tomcat", "Restarting"); len(st.PIDs) != 0 {
		t.Fatalf("restarting tomcat watches pids %v", st.PIDs)
	}
	// The length of the slow deploy is this scenario's premise: for that
	// long, pcheck must log nothing more.
	end := time.After(hold)
	for held := false; !held; {
		if lines := p.allLines(); len(lines) != 3 {
			t.Fatalf("while the deploy was held pcheck logged %q, want only its 3 lines of the kill", lines)
		}
		select {
		case <-end:
			held = true
		case <-time.After(200 * time.Millisecond):
		}
	}
	tc.release(t)
	got = tomcatLines(t, p, 4)
	next := expectTomcatUp(t, tc, got[3], jvm)
	getHTTP(t, tc.url()+"slow/slow.jsp", "slow deployed")
	upWith(t, p, "tomcat", next)
	if lines := p.allLines(); len(lines) != 4 {
		t.Fatalf("pcheck logged %q, want the kill's 3 lines and Up", lines)
	}
	if strings.Contains(p.stderr.String(), "stall detected") {
		t.Fatalf("pcheck found a stall during the slow deploy:\n%s", p.stderr.String())
	}
	logSyslog(t, p)
}
