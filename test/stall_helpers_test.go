// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/sockdiag"
)

// The syslog lines of a stall, written out (see e2e_test.go for why).
func webStall(pid, port int) string {
	return fmt.Sprintf("Find Web Server Stall: pid = %d : port = %d", pid, port)
}
func socketStall(pid, port int) string {
	return fmt.Sprintf("Find Socket Service Stall: pid = %d : port = %d", pid, port)
}
func killedProc(pid int) string { return fmt.Sprintf("Killed Process: pid= %d", pid) }

// concurrently runs the scenarios as subtests, all at once. They spend
// their time waiting for 10 s probe intervals, not on the CPU, so they are
// not throttled by -parallel (GOMAXPROCS, 2 on CI): two at a time they
// would take minutes. t.Run may be called from several goroutines.
func concurrently(t *testing.T, scenarios []stallScenario) {
	var wg sync.WaitGroup
	for _, s := range scenarios {
		wg.Go(func() { t.Run(s.name, s.run) })
	}
	wg.Wait()
}

type stallScenario struct {
	name string
	run  func(*testing.T)
}

// expectStallRecovery checks pcheck's lines from its line first on: stall
// (the detection of name's process pid), the kill of pid, its death by
// SIGKILL and the restart of name. It returns the pid the Up line names.
func expectStallRecovery(t *testing.T, p *pcheckRun, first int, name, stall string, pid int) int {
	t.Helper()
	got, err := p.lines(waitCtx(t), first+6)
	if err != nil {
		t.Fatal(err)
	}
	got = got[first:]
	want := []string{stall, killedProc(pid), down(name, pid), ended(name, pid, stallKilled), tryRestart(name)}
	m := upLine.FindStringSubmatch(got[5])
	if !slices.Equal(got[:5], want) || m == nil || m[1] != name {
		t.Fatalf("pcheck logged:\n\t%s\nwant:\n\t%s\n\t%s", strings.Join(got, "\n\t"),
			strings.Join(want, "\n\t"), up(name, 0)+" (any pid)")
	}
	next, _ := strconv.Atoi(m[2])
	return next
}

// expectStallError waits until pcheck's stderr holds its "stall detected"
// line for name with an error that says reason: which check failed.
func expectStallError(t *testing.T, p *pcheckRun, name, reason string) {
	t.Helper()
	re := regexp.MustCompile(`level=WARN msg="stall detected" service=` + regexp.QuoteMeta(name) +
		` .*err="[^"]*` + regexp.QuoteMeta(reason))
	ctx := waitCtx(t)
	for !re.MatchString(p.stderr.String()) {
		select {
		case <-ctx.Done():
			t.Fatalf("pcheck's stderr has no stall of %s with %q:\n%s", name, reason, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// withReasons wraps a restart script: the wrapper appends $PWATCH_REASON to
// reasonsFile, then runs the script; it returns the restart_script argv.
func withReasons(t testing.TB, dir, reasonsFile string, script ...string) []string {
	t.Helper()
	wrapper := filepath.Join(dir, "reason.sh")
	writeFile(t, wrapper, "#!/bin/sh\nprintf '%s\\n' \"$PWATCH_REASON\" >>\"$1\"\nshift\nexec \"$@\"\n", 0o755)
	return append([]string{wrapper, reasonsFile}, script...)
}

// expectReasons checks the PWATCH_REASON of every restart script run so
// far, in order.
func expectReasons(t testing.TB, reasonsFile string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(reasonsFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	got := strings.Fields(string(b))
	if !slices.Equal(got, want) {
		t.Fatalf("the restart script ran with PWATCH_REASON %q, want %q", got, want)
	}
}

// stallCheck is one _bi_ block: lib is webserv (http), webservs (https) or
// socket (tcp); stopAfter is PS_EXEC's error field (1: no more checks after
// the first detection); times are in seconds; extra are extension lines.
type stallCheck struct {
	lib                                    string
	interval, stopAfter, duration, timeout int
	port                                   int
	extra                                  []string
}

func (c stallCheck) block() string {
	so := fmt.Sprintf("DLL:/opt/HA/PSWE/lib/lib_bi_%s.so:DIRECT:-:", c.lib)
	var b strings.Builder
	fmt.Fprintf(&b, "_bi_%s{\n", c.lib)
	fmt.Fprintf(&b, "\tPS_INIT   %s:-:0\n", so)
	fmt.Fprintf(&b, "\tPS_EXEC   %s%d:%d:4:%d:%d:127.0.0.1:%d\n", so, c.interval, c.stopAfter, c.duration, c.port, c.timeout)
	fmt.Fprintf(&b, "\tPS_ACTION %s:-:1:0\n", so)
	fmt.Fprintf(&b, "\tPS_QUIT   %s:-:0\n", so)
	for _, e := range c.extra {
		fmt.Fprintf(&b, "\t%s\n", e)
	}
	b.WriteString("}\n")
	return b.String()
}

// expectOnTime checks that the i-th stall (from 0) of name by check c was
// declared at the first round where the probes had failed for its
// duration, not a round later, nor sooner: pcheck's stderr says for how
// long they had failed (on its monotonic clock, from round start to round
// start). A stall in the start (the server hung before its first answer)
// may come later by a probe timeout: the round due at the deadline is
// heard out (docs/behaviour.md, "When a stall is declared").
func (c stallCheck) expectOnTime(t *testing.T, p *pcheckRun, name string, i int) {
	t.Helper()
	re := regexp.MustCompile(`msg="stall detected" service=` + regexp.QuoteMeta(name) + ` .*failing_for=(\S+) not_counted=(\S+) starting=(\w+)`)
	var got [][]string
	pollUntil(t, fmt.Sprintf("saw stall %d of %s on pcheck's stderr", i+1, name), func() bool {
		got = re.FindAllStringSubmatch(p.stderr.String(), -1)
		return len(got) > i
	})
	failed, err := time.ParseDuration(got[i][1])
	if err != nil {
		t.Fatalf("stall %d of %s: failing_for %q: %v", i+1, name, got[i][1], err)
	}
	// Rounds excused as starvation (a loaded host) move the deadline on
	// by their time: what counts is the rest.
	excused, err := time.ParseDuration(got[i][2])
	if err != nil {
		t.Fatalf("stall %d of %s: not_counted %q: %v", i+1, name, got[i][2], err)
	}
	failed -= excused
	interval, duration := time.Duration(c.interval)*time.Second, time.Duration(c.duration)*time.Second
	late := interval / 2
	if got[i][3] == "true" {
		timeout := time.Duration(c.timeout) * time.Second
		if timeout == 0 {
			timeout = interval // pfile: timeout <= interval
		}
		late = timeout + interval/2
	}
	if failed < duration || failed >= duration+late {
		t.Errorf("stall %d of %s (starting %s) declared after %v of failed probes (and %v not counted), want %v (duration %v, interval %v): "+
			"the round that first saw duration pass did not declare it", i+1, name, got[i][3], failed, excused, duration, duration, interval)
	}
}

// appendFile adds text at the end of path.
func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// demoServer is one cmd/demoserver instance on a loopback port of its own, run
// from its own copy of the binary (its pfile's process matches this
// instance only). Its restart script records PWATCH_REASON in reasons.
type demoServer struct {
	argv                       []string // the server's command line
	dir, exe, pidFile, reasons string
	port                       int
	start                      string         // script that starts it detached
	script                     []string       // its restart_script: start, through withReasons
	roots                      *x509.CertPool // nil: http; else https, trusted by these
}

// newDemo prepares a demoserver with flags (-delay, -backlog), over https
// when https.
func newDemo(t testing.TB, https bool, flags ...string) *demoServer {
	t.Helper()
	testpriv.Root(t)
	dir := shortDir(t)
	d := &demoServer{dir: dir, exe: filepath.Join(dir, "demoserver"), pidFile: filepath.Join(dir, "demo.pid"),
		reasons: filepath.Join(dir, "reasons"), port: freePort(t), start: filepath.Join(dir, "start")}
	copyFile(t, filepath.Join(bin.dir, "demoserver"), d.exe)
	argv := append([]string{d.exe, "-listen", fmt.Sprintf("127.0.0.1:%d", d.port), "-pidfile", d.pidFile}, flags...)
	if https {
		var cert, key string
		cert, key, d.roots = selfSigned(t, dir)
		argv = append(argv, "-tls-cert", cert, "-tls-key", key)
	}
	d.argv = argv
	writeFile(t, d.start, fmt.Sprintf("#!/bin/sh\nsetsid %s </dev/null >>%s 2>&1 &\n",
		strings.Join(argv, " "), filepath.Join(dir, "demo.log")), 0o755)
	d.script = withReasons(t, dir, d.reasons, d.start)
	t.Cleanup(d.killAll)
	return d
}

func (d *demoServer) url() string {
	if d.roots != nil {
		return fmt.Sprintf("https://127.0.0.1:%d/", d.port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", d.port)
}

// run starts the server as an operator would and returns its pid once it
// answers.
func (d *demoServer) run(t testing.TB) int {
	t.Helper()
	if out, err := exec.Command(d.start).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", d.start, err, out)
	}
	pid := d.waitPID(t, 0)
	d.get(t)
	return pid
}

// waitPID waits until the pid file names a running server other than old
// (demoserver writes it once it listens), and returns it.
func (d *demoServer) waitPID(t testing.TB, old int) int {
	t.Helper()
	var pid int
	pollUntil(t, fmt.Sprintf("found a new demoserver in %s", d.pidFile), func() bool {
		b, _ := os.ReadFile(d.pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0 && pid != old && alive(pid)
	})
	return pid
}

// get polls the server until it answers 200 with its greeting.
func (d *demoServer) get(t testing.TB) {
	t.Helper()
	if d.roots == nil {
		getHTTP(t, d.url(), "hello from demoserver")
		return
	}
	getHTTPS(t, d.url(), "hello from demoserver", d.roots)
}

// expectRestarted checks that pcheck's new pid for the server is the
// server's own, which answers.
func (d *demoServer) expectRestarted(t testing.TB, old, pcheckSays int) {
	t.Helper()
	if real := d.waitPID(t, old); real != pcheckSays {
		t.Fatalf("pcheck says the demoserver is up with pid %d, its pid file says %d", pcheckSays, real)
	}
	d.get(t)
}

// signal sends sig to pid, which must run.
func sendSignal(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

// writePfile writes the pfile of service name, this server with checks,
// into dir and returns its path.
func (d *demoServer) writePfile(t testing.TB, dir, name string, checks ...stallCheck) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "process           %s\n", d.exe)
	fmt.Fprintf(&b, "restart_script    %s\n", strings.Join(d.script, " "))
	b.WriteString("restart_timeout   30\nretry_count       3\ngrace             3600\nkill_timeout      1\n")
	for _, c := range checks {
		b.WriteString(c.block())
	}
	path := filepath.Join(dir, name+".pfile")
	writeFile(t, path, b.String(), 0o644)
	return path
}

// killAll kills every process of this instance (the test's cleanup).
func (d *demoServer) killAll() { killExe(d.exe) }

// fillAcceptQueue opens connections to port until the kernel reports the
// listener's accept queue full, and keeps them open until the test ends.
func fillAcceptQueue(t testing.TB, port int) {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pollUntil(t, "filled the accept queue of "+addr, func() bool {
		ls, err := sockdiag.Listeners(port)
		if err != nil {
			t.Fatalf("sock_diag of port %d: %v", port, err)
		}
		for _, l := range ls {
			if l.Full() {
				return true
			}
		}
		// A full queue drops the SYN: the dial times out, and that is fine.
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			conns = append(conns, c)
		}
		return false
	})
}

// stopAll sends SIGSTOP to pids and waits until each is stopped.
func stopAll(t testing.TB, pids []int) {
	t.Helper()
	for _, pid := range pids {
		sendSignal(t, pid, syscall.SIGSTOP)
	}
	for _, pid := range pids {
		pollUntil(t, fmt.Sprintf("saw pid %d stopped", pid), func() bool { return procState(pid) == 'T' })
	}
}

// procState is the state letter of /proc/PID/stat, 0 when pid is gone.
func procState(pid int) byte {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

// selfSigned writes into dir a self-signed certificate for 127.0.0.1, ::1
// and localhost and its key, and returns their paths and a pool trusting
// the certificate.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pwatch e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// getHTTPS is getHTTP over TLS, trusting roots.
func getHTTPS(t testing.TB, url, want string, roots *x509.CertPool) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	getWith(t, &http.Client{Timeout: 5 * time.Second, Transport: tr}, url, want)
}

// nginxTLS turns srv's nginx configuration into an https one, with a
// self-signed certificate, and returns a pool trusting it.
func nginxTLS(t testing.TB, srv *server) *x509.CertPool {
	t.Helper()
	conf := filepath.Join(srv.dir, "nginx.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("listen 127.0.0.1:%d;", srv.port)
	if n := strings.Count(string(b), listen); n != 1 {
		t.Fatalf("%s holds %q %d times, want once:\n%s", conf, listen, n, b)
	}
	cert, key, roots := selfSigned(t, srv.dir)
	ssl := fmt.Sprintf("listen 127.0.0.1:%d ssl;\n\t\tssl_certificate %s;\n\t\tssl_certificate_key %s;", srv.port, cert, key)
	writeFile(t, conf, strings.Replace(string(b), listen, ssl, 1), 0o644)
	return roots
}

// expectNoAnswer waits until a new connection to url goes unanswered for
// a few seconds (a hung server).
func expectNoAnswer(t testing.TB, url string) {
	t.Helper()
	// A new connection each time, as a probe makes: one a hung server
	// accepted before it hung is not what this is about. A signal takes
	// effect a moment after kill(2) returns: the server may answer until
	// then, never after.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ctx := waitCtx(t)
	for {
		resp, err := client.Get(url)
		if err != nil {
			return
		}
		resp.Body.Close()
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s still answers %s, want no answer from a hung server", url, resp.Status)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sampleFields are the values the sample tests put into a seed sample: the
// process entry pwatch adds above it, and PS_EXEC's interval, duration and
// port.
type sampleFields struct{ process, script, interval, duration, port string }

var (
	sampleEntry = regexp.MustCompile(`(?m)^(process|restart_script)([ \t]+)(.+)$`)
	// DIRECT:timeout:interval:error:argc:duration:port
	sampleExec = regexp.MustCompile(`(DIRECT:[^:]*:)(\d+)(:[^:]*:\d+:)(\d+)(:)(\d+)`)
)

// rewriteSample is sample with f put in.
func rewriteSample(t testing.TB, sample string, f sampleFields) string {
	t.Helper()
	if n := len(sampleEntry.FindAllString(sample, -1)); n != 2 {
		t.Fatalf("the sample has %d process and restart_script lines, want 2:\n%s", n, sample)
	}
	if n := len(sampleExec.FindAllString(sample, -1)); n != 1 {
		t.Fatalf("the sample has %d PS_EXEC fields, want 1:\n%s", n, sample)
	}
	s := sampleEntry.ReplaceAllStringFunc(sample, func(m string) string {
		sm := sampleEntry.FindStringSubmatch(m)
		if sm[1] == "restart_script" {
			return sm[1] + sm[2] + f.script
		}
		return sm[1] + sm[2] + f.process
	})
	return sampleExec.ReplaceAllStringFunc(s, func(m string) string {
		sm := sampleExec.FindStringSubmatch(m)
		return sm[1] + f.interval + sm[3] + f.duration + sm[5] + f.port
	})
}

// expectOnlyRewritten checks, line by line and independently of
// rewriteSample, that got is orig but for f: three lines changed, the
// values of process and restart_script, and PS_EXEC's fields interval,
// duration and port; every other byte is the seed's.
func expectOnlyRewritten(t testing.TB, orig, got string, f sampleFields) {
	t.Helper()
	ol, gl := strings.Split(orig, "\n"), strings.Split(got, "\n")
	if len(ol) != len(gl) {
		t.Fatalf("the rewritten sample has %d lines, the seed's %d:\n%s", len(gl), len(ol), got)
	}
	changed := 0
	for i := range ol {
		if ol[i] == gl[i] {
			continue
		}
		changed++
		if !rewrittenLine(ol[i], gl[i], f) {
			t.Errorf("line %d: %q became %q, more than the process entry's values or PS_EXEC's interval, duration and port", i+1, ol[i], gl[i])
		}
	}
	if changed != 3 {
		t.Fatalf("%d lines of the sample changed, want 3 (process, restart_script, PS_EXEC):\n%s", changed, got)
	}
}

func rewrittenLine(o, g string, f sampleFields) bool {
	for key, v := range map[string]string{"process": f.process, "restart_script": f.script} {
		if rest, ok := strings.CutPrefix(o, key); ok && strings.TrimLeft(rest, " \t") != rest {
			return g == strings.TrimSuffix(o, strings.TrimLeft(rest, " \t"))+v
		}
	}
	of, gf := strings.Split(o, ":"), strings.Split(g, ":")
	k := slices.IndexFunc(of, func(s string) bool { return strings.TrimSpace(s) == "DIRECT" })
	if k < 0 || len(of) < k+7 || len(gf) != len(of) {
		return false
	}
	want := slices.Clone(of)
	want[k+2], want[k+5], want[k+6] = f.interval, f.duration, f.port
	return slices.Equal(want, gf)
}

// rulesOf is padmin check --json's effective rules of the pfile at path.
func rulesOf(t testing.TB, path string) map[string]any {
	t.Helper()
	out, err := exec.Command(bin.padmin, "check", "--json", path).Output()
	if err != nil {
		t.Fatalf("padmin check --json %s: %v", path, err)
	}
	var rules map[string]any
	if err := json.Unmarshal(out, &rules); err != nil {
		t.Fatalf("padmin check --json %s: %v\n%s", path, err, out)
	}
	return rules
}
