// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// server is one instance of a real web server, on a loopback port of its
// own, with its configuration, pid file and logs in a directory of its own.
// Its pfile matches this instance only: nginx rewrites its argv (no args to
// match), so each nginx instance runs its own copy of /usr/sbin/nginx;
// apache2 keeps its argv, so its pfile's args names the instance's -f CONF.
type server struct {
	kind    string // nginx or apache2
	dir     string
	port    int
	token   string // in the page it serves, to tell it from any other server
	exe     string // the pfile's process
	args    string // the pfile's args; "" for none
	pidFile string
	// script is the restart script (the template from scripts/restart/)
	// with this instance's options.
	script []string
	// brokenScript is the same template pointed at a configuration that
	// does not load: a restart script that fails.
	brokenScript []string
}

// kinds are the servers every scenario runs against.
var kinds = []string{"apache2", "nginx"}

func newServer(t testing.TB, kind string) *server {
	t.Helper()
	testpriv.Root(t)
	dir := shortDir(t)
	// apache2's workers run as www-data and read the document root here.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &server{kind: kind, dir: dir, port: freePort(t)}
	s.token = fmt.Sprintf("pwatch-e2e-%s-%d", kind, s.port)
	switch kind {
	case "nginx":
		s.setupNginx(t)
	case "apache2":
		s.setupApache2(t)
	default:
		t.Fatalf("unknown server kind %q", kind)
	}
	t.Cleanup(s.killAll)
	return s
}

func template(name string) string { return filepath.Join(repoRoot(), "scripts", "restart", name) }

func (s *server) setupNginx(t testing.TB) {
	const system = "/usr/sbin/nginx"
	if _, err := os.Stat(system); err != nil {
		testpriv.Unavailable(t, "nginx is not installed ("+system+"): apt-get install nginx")
	}
	s.exe = filepath.Join(s.dir, "nginx")
	copyFile(t, system, s.exe)
	s.pidFile = filepath.Join(s.dir, "nginx.pid")
	conf := filepath.Join(s.dir, "nginx.conf")
	writeFile(t, conf, fmt.Sprintf(`daemon on;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		location / { return 200 "%[3]s\n"; }
	}
}
`, s.dir, s.port, s.token), 0o644)
	broken := filepath.Join(s.dir, "broken.conf")
	writeFile(t, broken, "this is not an nginx directive;\n", 0o644)
	opts := func(c string) []string {
		return []string{template("nginx.restart"), "--binary", s.exe, "-e", filepath.Join(s.dir, "error.log"), "-c", c, "-p", s.dir + "/"}
	}
	s.script, s.brokenScript = opts(conf), opts(broken)
}

func (s *server) setupApache2(t testing.TB) {
	const system = "/usr/sbin/apache2"
	if _, err := os.Stat(system); err != nil {
		testpriv.Unavailable(t, "apache2 is not installed ("+system+"): apt-get install apache2")
	}
	if _, err := exec.LookPath("apache2ctl"); err != nil {
		testpriv.Unavailable(t, "apache2ctl is not installed: apt-get install apache2")
	}
	s.exe = system
	s.pidFile = filepath.Join(s.dir, "run", "apache2.pid")
	for _, d := range []string{"run", "htdocs"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(s.dir, "htdocs", "index.html"), s.token+"\n", 0o644)
	const mods = "/usr/lib/apache2/modules"
	conf := filepath.Join(s.dir, "httpd.conf")
	// Two children of 5 threads, and 10 spare threads wanted: a child
	// killed is replaced (within a second), as nginx replaces a worker.
	writeFile(t, conf, fmt.Sprintf(`ServerRoot %[1]s
ServerName 127.0.0.1
LoadModule mpm_event_module %[3]s/mod_mpm_event.so
LoadModule authz_core_module %[3]s/mod_authz_core.so
LoadModule dir_module %[3]s/mod_dir.so
LoadModule mime_module %[3]s/mod_mime.so
Listen 127.0.0.1:%[2]d
PidFile %[1]s/run/apache2.pid
DefaultRuntimeDir %[1]s/run
Mutex file:%[1]s/run default
ErrorLog %[1]s/error.log
LogLevel warn
User www-data
Group www-data
StartServers 2
ServerLimit 4
ThreadsPerChild 5
MinSpareThreads 10
MaxSpareThreads 20
MaxRequestWorkers 20
TypesConfig /etc/mime.types
DocumentRoot %[1]s/htdocs
<Directory %[1]s/htdocs>
	Require all granted
</Directory>
DirectoryIndex index.html
`, s.dir, s.port, mods), 0o644)
	broken := filepath.Join(s.dir, "broken.conf")
	writeFile(t, broken, "ThisIsNotAnApacheDirective on\n", 0o644)
	// Master and workers keep "-f CONF -k start" as their argv: the
	// instance's own conf path tells them from any other apache2.
	s.args = "-f " + regexp.QuoteMeta(conf) + " -k start$"
	s.script = []string{template("apache2.restart"), "-f", conf}
	s.brokenScript = []string{template("apache2.restart"), "-f", broken}
}

func (s *server) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", s.port) }

// start starts the server as an operator would, with its restart script,
// and returns its master's pid once it answers.
func (s *server) start(t testing.TB) int {
	t.Helper()
	cmd := exec.Command(s.script[0], s.script[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(s.script, " "), err, out)
	}
	pid := s.waitMaster(t, 0)
	getHTTP(t, s.url(), s.token)
	return pid
}

// waitMaster waits until the pid file names a running master other than
// old, and returns it.
func (s *server) waitMaster(t testing.TB, old int) int {
	t.Helper()
	var pid int
	pollUntil(t, fmt.Sprintf("found a new %s master in %s", s.kind, s.pidFile), func() bool {
		pid = s.pidFromFile()
		return pid > 0 && pid != old && alive(pid)
	})
	return pid
}

func (s *server) pidFromFile() int {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// workers returns the running children of master, waiting for some.
func (s *server) workers(t testing.TB, master int) []int {
	t.Helper()
	var w []int
	pollUntil(t, fmt.Sprintf("saw a worker of %s master %d", s.kind, master), func() bool {
		w = children(master)
		return len(w) > 0
	})
	return w
}

// ours reports whether pid belongs to this instance.
func (s *server) ours(pid int) bool {
	if s.kind == "nginx" {
		return runs(s.exe)(pid)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "\x00"+filepath.Join(s.dir, "httpd.conf")+"\x00")
}

// killAll kills every process of this instance (the test's cleanup; pcheck
// is stopped before, as its cleanup was registered after).
func (s *server) killAll() { killWhere(s.ours) }

// pfileOpts are the keys a scenario changes.
type pfileOpts struct {
	name       string   // service name; the kind when ""
	script     []string // restart_script; the server's when nil
	retryCount int
	action     string // retry_over_action; continue when ""
}

// writePfile writes the pfile of this instance into dir and returns its
// path.
func (s *server) writePfile(t testing.TB, dir string, o pfileOpts) string {
	t.Helper()
	if o.name == "" {
		o.name = s.kind
	}
	if o.script == nil {
		o.script = s.script
	}
	if o.action == "" {
		o.action = "continue"
	}
	if o.retryCount == 0 {
		o.retryCount = 3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "process           %s\n", s.exe)
	if s.args != "" {
		fmt.Fprintf(&b, "args              %s\n", s.args)
	}
	fmt.Fprintf(&b, "restart_script    %s\n", strings.Join(o.script, " "))
	fmt.Fprintf(&b, "restart_timeout   30\nretry_count       %d\ngrace             3600\nretry_interval    0\n", o.retryCount)
	fmt.Fprintf(&b, "retry_over_action %s\nkill_timeout      1\n", o.action)
	path := filepath.Join(dir, o.name+".pfile")
	writeFile(t, path, b.String(), 0o644)
	return path
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
