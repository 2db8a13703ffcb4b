// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

const samplesDir = "../../pfile"

func mustParse(t *testing.T, src string) (*Service, []Warning) {
	t.Helper()
	svc, warns, err := Parse("t.pfile", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\nsource:\n%s", err, src)
	}
	return svc, warns
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleWarnings are the warnings of the guide's samples.
var sampleWarnings = map[string][]string{
	"sample3.pfile": {
		"sample3.pfile:8: warning: taken as the rest of the comment on line 7 (it follows a comment ending with ':'); start it with # to make that explicit",
	},
}

// sampleTable is docs/pfile.md's table of "The guide's three samples": per
// sample file, its cells after the sample's number (check, interval,
// error, duration, port, host, probe timeout, path, action error).
func sampleTable(t *testing.T) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile(docsPfile)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## The guide's three samples\n")
	if !ok {
		t.Fatalf("%s: no section \"The guide's three samples\"", docsPfile)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 10 || !isDigits(cells[0]) {
			continue // the header and its rule
		}
		rows["sample"+cells[0]+".pfile"] = cells[1:]
	}
	if len(rows) != 3 {
		t.Fatalf("%s: %d sample rows in \"The guide's three samples\", want 3", docsPfile, len(rows))
	}
	return rows
}

// The samples load as docs/pfile.md's table says.
func TestSeedSamples(t *testing.T) {
	for file, want := range sampleTable(t) {
		t.Run(file, func(t *testing.T) {
			src := readSample(t, file)
			for _, variant := range []struct {
				name string
				src  []byte
			}{
				{"LF", src},
				{"CRLF", []byte(strings.ReplaceAll(string(src), "\n", "\r\n"))},
			} {
				svc, warns, err := Parse(file, variant.src)
				if err != nil {
					t.Fatalf("%s: %v", variant.name, err)
				}
				var ws []string
				for _, w := range warns {
					ws = append(ws, w.String())
				}
				if !reflect.DeepEqual(ws, sampleWarnings[file]) {
					t.Errorf("%s: warnings %q, want %q", variant.name, ws, sampleWarnings[file])
				}
				if svc.Name != strings.TrimSuffix(file, ".pfile") {
					t.Errorf("name %q", svc.Name)
				}
				if len(svc.Checks) != 1 {
					t.Fatalf("%s: %d checks, want 1", variant.name, len(svc.Checks))
				}
				c := svc.Checks[0]
				path := c.Path
				if path == "" {
					path = "-"
				}
				got := []string{c.Kind.String(), fmt.Sprint(secs(c.Interval)), fmt.Sprint(boolInt(c.StopAfterDetect)),
					fmt.Sprint(secs(c.Duration)), fmt.Sprint(c.Port), c.Host, fmt.Sprint(secs(c.Timeout)), path,
					fmt.Sprint(boolInt(c.ActionError))}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: check %q, docs/pfile.md's table says %q", variant.name, got, want)
				}
				if !c.ListenCheck {
					t.Errorf("listen_check should default to yes")
				}
			}
		})
	}
}

// The samples keep the seed's text byte for byte below the added lines.
func TestSeedSamplesVerbatim(t *testing.T) {
	seed := filepath.Join("..", "..", "..", "shared", "seed", "000_4b09d7b16b04f295.txt")
	raw, err := os.ReadFile(seed)
	if err != nil {
		t.Skipf("seed not beside the repository: %v", err)
	}
	for _, name := range []string{"sample1.pfile", "sample2.pfile", "sample3.pfile"} {
		src := string(readSample(t, name))
		i := strings.Index(src, "\n\n")
		copied := src[i+2:]
		if !strings.Contains(string(raw), "```\n"+copied+"```\n") {
			t.Errorf("%s: the text below the process entry is not a verbatim block of the seed", name)
		}
	}
}

func TestLoadSamplesDir(t *testing.T) {
	svcs, warns, err := LoadDir(samplesDir)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(samplesDir, "*.pfile"))
	if len(svcs) != len(files) {
		t.Errorf("%d services from %d files", len(svcs), len(files))
	}
	got := map[string]bool{}
	for i, s := range svcs {
		got[s.Name] = true
		if i > 0 && svcs[i-1].Name >= s.Name {
			t.Errorf("services not sorted by name: %s before %s", svcs[i-1].Name, s.Name)
		}
	}
	for _, n := range []string{"apache2", "autoreboot-apache2", "nginx", "sample1", "sample2", "sample3", "sunone", "tomcat"} {
		if !got[n] {
			t.Errorf("service %s missing from %s", n, samplesDir)
		}
	}
	for _, w := range warns {
		if !strings.HasSuffix(w.File, "sample3.pfile") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
}

func TestRealisticSamples(t *testing.T) {
	var paths []string
	for _, n := range []string{"apache2", "nginx", "tomcat", "sunone", "autoreboot-apache2"} {
		paths = append(paths, filepath.Join(samplesDir, n+".pfile"))
	}
	svcs, _, err := Load(paths...)
	if err != nil {
		t.Fatal(err)
	}
	apache, nginx, tomcat, sunone, autoreboot := svcs[0], svcs[1], svcs[2], svcs[3], svcs[4]
	if apache.Process != "/usr/sbin/apache2" || !apache.ArgsRule.Match("-k start") || apache.ArgsRule.Match("-k graceful") {
		t.Errorf("apache2: process %q args %q", apache.Process, apache.Args)
	}
	if apache.RetryOverAction != ActionExit || apache.Checks[0].Port != 80 {
		t.Errorf("apache2: %+v", apache)
	}
	if nginx.Process != "/usr/sbin/nginx" || nginx.ArgsRule != nil {
		t.Errorf("nginx: process %q args %q", nginx.Process, nginx.Args)
	}
	if nginx.Checks[0].ExpectStatus != (StatusRange{100, 499}) {
		t.Errorf("nginx: expect_status %v", nginx.Checks[0].ExpectStatus)
	}
	const boot = "-Djava.util.logging.config.file=/var/lib/tomcat10/conf/logging.properties -classpath /usr/share/tomcat10/bin/bootstrap.jar:/usr/share/tomcat10/bin/tomcat-juli.jar -Dcatalina.base=/var/lib/tomcat10 -Dcatalina.home=/usr/share/tomcat10 org.apache.catalina.startup.Bootstrap "
	if !tomcat.ArgsRule.Match(boot+"start") || !tomcat.ArgsRule.Match(boot+"-security start") || tomcat.ArgsRule.Match(boot+"stop") {
		t.Errorf("tomcat: args %q", tomcat.Args)
	}
	// The JVM tomcat-start.sh picks (default-java), not /usr/bin/java's alternative.
	if tomcat.Process != "/usr/lib/jvm/default-java/bin/java" || tomcat.User != "tomcat" || tomcat.RestartTimeout != 180*time.Second || tomcat.Checks[0].Port != 8080 {
		t.Errorf("tomcat: %+v", tomcat)
	}
	// The watchdog is the service, told from other instances by its config directory.
	const wdog = "-d /opt/oracle/webserver7/https-www.example.com/config -r /opt/oracle/webserver7 -t /tmp/https-www.example.com-1"
	if sunone.Process != "/opt/oracle/webserver7/lib/webservd-wdog" || !sunone.ArgsRule.Match(wdog) ||
		sunone.ArgsRule.Match("-d /opt/oracle/webserver7/https-www.example.com/configs") || sunone.ArgsRule.Match("-d /opt/oracle/webserver7/admin-server/config") {
		t.Errorf("sunone: process %q args %q", sunone.Process, sunone.Args)
	}
	if autoreboot.RetryOverAction != ActionReboot || autoreboot.RecoveryTimeout != 300*time.Second ||
		len(autoreboot.RetryOverScript) != 1 || len(autoreboot.Checks) != 1 || !autoreboot.Checks[0].ListenCheck {
		t.Errorf("autoreboot-apache2: %+v", autoreboot)
	}
	for _, s := range svcs {
		if !strings.HasPrefix(s.RestartScript[0], "/etc/pwatch/scripts/") {
			t.Errorf("%s: restart_script %v", s.Name, s.RestartScript)
		}
	}
}

func TestDefaults(t *testing.T) {
	svc, warns := mustParse(t, pf(lProc, lRS, lOpen, lExec, lAct, lClose))
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := &Service{
		Name: "t", File: "t.pfile", Process: "/usr/sbin/apache2",
		MinCount: 1, RestartScript: []string{"/etc/pwatch/scripts/apache2.restart"},
		RestartTimeout: 60 * time.Second, RetryCount: 3, Grace: 86400 * time.Second,
		RetryInterval: 0, RetryBackoff: 1, StableUptime: 60 * time.Second,
		RetryOverAction: ActionContinue, KillTimeout: 10 * time.Second,
		StartOnLoad: true,
		LimitFor:    30 * time.Second, LimitAction: LimitRestart, LimitGrace: 10 * time.Second,
		Checks: []Check{{
			Kind: KindHTTP, Block: "_bi_webserv", Line: 3, Library: "/opt/HA/PSWE/lib/lib_bi_webserv.so",
			Interval: 60 * time.Second, Duration: 600 * time.Second, Port: 8080, Host: "127.0.0.1",
			Timeout: 10 * time.Second, Path: "/", ActionError: true, ListenCheck: true,
		}},
	}
	if !reflect.DeepEqual(svc, want) {
		t.Errorf("got  %+v\nwant %+v", svc, want)
	}

	// PS_EXEC fields left empty or "-" take their defaults too.
	svc, _ = mustParse(t, pf(lProc, lRS, lOpen, execHead+"-:::5:-:8080:-:-:-", lAct, lClose))
	c := svc.Checks[0]
	if c.Interval != 60*time.Second || c.StopAfterDetect || c.Duration != 600*time.Second ||
		c.Host != "127.0.0.1" || c.Timeout != 10*time.Second || c.Path != "/" {
		t.Errorf("defaults from empty fields: %+v", c)
	}
	// The probe timeout defaults to min(interval, 10).
	svc, _ = mustParse(t, pf(lProc, lRS, "_bi_socket{",
		"PS_EXEC DLL:/x/lib_bi_socket.so:DIRECT:-:10:1:2:10:22",
		"PS_ACTION DLL:/x/lib_bi_socket.so:DIRECT:0:0", "}"))
	if c := svc.Checks[0]; c.Timeout != 10*time.Second || !c.StopAfterDetect || c.ActionError || c.Path != "" {
		t.Errorf("tcp check: %+v", c)
	}
}

func TestAllKeys(t *testing.T) {
	svc, warns := mustParse(t, pf(
		"process /usr/lib/jvm/java-17-openjdk-amd64/bin/java",
		`args "org\.apache\.catalina\.startup\.Bootstrap start$"`,
		"pidfile /run/tomcat.pid",
		"user 998",
		"min_count 2",
		`restart_script /etc/pwatch/scripts/tomcat.restart --reason "stall or down"`,
		"restart_timeout 120",
		"retry_count 0",
		"grace 3600",
		"retry_interval 5",
		"retry_backoff 1.5",
		"retry_interval_max 120",
		"stable_uptime 30",
		"rearm_after 600",
		"retry_over_action REBOOT",
		"retry_over_script /usr/local/bin/alert tomcat",
		"recovery_timeout 900",
		"kill_timeout 0",
		"start_on_load no",
		"memory_max 2G",
		"cpu_max 250",
		"fds_max 4096",
		"threads_max 800",
		"limit_for 60",
		"limit_action restart",
		"limit_grace 20",
		"_bi_webservs{",
		"PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_webservs.so:DIRECT:-:30:1:5:90:8443:[::1]:3:/health?x=1",
		"PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webservs.so:DIRECT:--:0:0",
		"tls_verify yes",
		"tls_ca /etc/ssl/certs/ca-certificates.crt",
		"tls_server_name www.example.org",
		"expect_status 200-399",
		"listen_check no",
		"}",
	))
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := &Service{
		Name: "t", File: "t.pfile", Process: "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
		Args: `org\.apache\.catalina\.startup\.Bootstrap start$`, ArgsRule: svc.ArgsRule,
		PIDFile: "/run/tomcat.pid", User: "998", MinCount: 2,
		RestartScript:  []string{"/etc/pwatch/scripts/tomcat.restart", "--reason", "stall or down"},
		RestartTimeout: 120 * time.Second, RetryCount: 0, Grace: 3600 * time.Second,
		RetryInterval: 5 * time.Second, RetryBackoff: 1.5, RetryIntervalMax: 120 * time.Second,
		StableUptime: 30 * time.Second, RearmAfter: 600 * time.Second, RetryOverAction: ActionReboot,
		RetryOverScript: []string{"/usr/local/bin/alert", "tomcat"},
		RecoveryTimeout: 900 * time.Second, KillTimeout: 0, StartOnLoad: false,
		MemoryMax: 2 << 30, CPUMax: 250, FDsMax: 4096, ThreadsMax: 800,
		LimitFor: 60 * time.Second, LimitAction: LimitRestart, LimitGrace: 20 * time.Second,
		Checks: []Check{{
			Kind: KindHTTPS, Block: "_bi_webservs", Line: 27, Library: "/opt/HA/PSWE/lib/lib_bi_webservs.so",
			Interval: 30 * time.Second, StopAfterDetect: true, Duration: 90 * time.Second, Port: 8443,
			Host: "::1", Timeout: 3 * time.Second, Path: "/health?x=1", ActionError: false,
			TLSVerify: true, TLSCA: "/etc/ssl/certs/ca-certificates.crt", TLSServerName: "www.example.org",
			ExpectStatus: StatusRange{200, 399}, ListenCheck: false,
		}},
	}
	if !reflect.DeepEqual(svc, want) {
		t.Errorf("got  %+v\nwant %+v", svc, want)
	}
	if svc.ArgsRule == nil || !svc.ArgsRule.Match("-Dx=y org.apache.catalina.startup.Bootstrap start") {
		t.Errorf("args regexp %v", svc.ArgsRule)
	}
}

func TestLexical(t *testing.T) {
	t.Run("CRLF", func(t *testing.T) {
		svc, _ := mustParse(t, "process /usr/sbin/apache2\r\nrestart_script /r \"a b\"\r\nretry_count 5\r\n")
		if svc.Process != "/usr/sbin/apache2" || svc.RetryCount != 5 || !reflect.DeepEqual(svc.RestartScript, []string{"/r", "a b"}) {
			t.Errorf("%+v", svc)
		}
	})
	t.Run("BOM and no final newline", func(t *testing.T) {
		svc, _ := mustParse(t, "\xef\xbb\xbfprocess /usr/sbin/apache2\nrestart_script /r")
		if svc.Process != "/usr/sbin/apache2" {
			t.Errorf("%+v", svc)
		}
	})
	t.Run("backslash continuation", func(t *testing.T) {
		svc, _ := mustParse(t, pf(
			"process /usr/sbin/apa\\",
			"che2",
			"restart_script /etc/pwatch/scripts/apache2.restart \\",
			"    --graceful \\",
			"    \"--reason=down or stall\"",
			lOpen,
			"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-:60:0:\\",
			"          2:600:8080",
			lAct, lClose))
		if svc.Process != "/usr/sbin/apache2" {
			t.Errorf("process %q", svc.Process)
		}
		if want := []string{"/etc/pwatch/scripts/apache2.restart", "--graceful", "--reason=down or stall"}; !reflect.DeepEqual(svc.RestartScript, want) {
			t.Errorf("restart_script %q, want %q", svc.RestartScript, want)
		}
		if svc.Checks[0].Port != 8080 {
			t.Errorf("port %d", svc.Checks[0].Port)
		}
	})
	t.Run("colon continuation of PS_ entries", func(t *testing.T) {
		svc, _ := mustParse(t, pf(lProc, lRS, lOpen,
			"  PS_EXEC DLL:",
			"     /opt/HA/PSWE/lib/lib_bi_webserv.so:",
			"\t\tDIRECT:-:60:0:2:600:8080",
			lAct, lClose))
		if svc.Checks[0].Port != 8080 {
			t.Errorf("port %d", svc.Checks[0].Port)
		}
	})
	t.Run("colon at the end before a statement does not join", func(t *testing.T) {
		_, _, err := Parse("t.pfile", []byte(pf(lProc, lRS, lOpen, lExec,
			"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:1:0:", lClose)))
		want := `t.pfile:5:68: PS_ACTION argc: "" must be 0 (the last field)`
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("quoting and escapes", func(t *testing.T) {
		svc, _ := mustParse(t, pf(lProc,
			`restart_script "/opt/my app/restart" "say \"hi\"" "back\\slash" "\d+" plain#not-a-comment "#nor this"  # but this is`,
			`args "^-k start( -DFOREGROUND)?$"`))
		want := []string{"/opt/my app/restart", `say "hi"`, `back\slash`, `\d+`, "plain#not-a-comment", "#nor this"}
		if !reflect.DeepEqual(svc.RestartScript, want) {
			t.Errorf("restart_script %q, want %q", svc.RestartScript, want)
		}
		if svc.Args != "^-k start( -DFOREGROUND)?$" {
			t.Errorf("args %q", svc.Args)
		}
	})
	t.Run("args unquoted takes the rest of the line", func(t *testing.T) {
		svc, _ := mustParse(t, pf(lProc, lRS, `args   -k  start \S*   # comment`))
		if svc.Args != `-k  start \S*` {
			t.Errorf("args %q", svc.Args)
		}
	})
	t.Run("case-insensitive keys", func(t *testing.T) {
		svc, _ := mustParse(t, pf("PROCESS /usr/sbin/apache2", "Restart_Script /r", "Retry_Count 7",
			"Retry_Over_Action Shutdown", "Start_On_Load NO", "_BI_WEBSERV{",
			"  ps_exec DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:direct:-:60:0:2:600:8080",
			"  Ps_Action dll:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:1:0", "  Listen_Check NO", "}"))
		if svc.RetryCount != 7 || svc.RetryOverAction != ActionShutdown || svc.StartOnLoad || svc.Checks[0].ListenCheck {
			t.Errorf("%+v", svc)
		}
	})
}

// Comments ending in a colon and the lines they may wrap.
func TestWrappedComments(t *testing.T) {
	t.Run("wrapped comment", func(t *testing.T) {
		svc, warns := mustParse(t, pf(lProc, lRS,
			"# the fields are:",
			"  <interval>:<duration>:",
			"  <port>",
			"retry_count 4"))
		if svc.RetryCount != 4 {
			t.Errorf("retry_count %d", svc.RetryCount)
		}
		var got []string
		for _, w := range warns {
			got = append(got, w.String())
		}
		want := []string{
			"t.pfile:4: warning: taken as the rest of the comment on line 3 (it follows a comment ending with ':'); start it with # to make that explicit",
			"t.pfile:5: warning: taken as the rest of the comment on line 3 (it follows a comment ending with ':'); start it with # to make that explicit",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("comment ending in colon does not swallow a statement", func(t *testing.T) {
		svc, warns := mustParse(t, pf(lProc, lRS,
			"# retry settings:",
			"retry_count 7",
			"# the stall check:",
			lOpen, lExec, lAct,
			"  # and then:",
			"  listen_check no",
			"# end:",
			lClose))
		if len(warns) != 0 {
			t.Errorf("warnings: %v", warns)
		}
		if svc.RetryCount != 7 || len(svc.Checks) != 1 || svc.Checks[0].ListenCheck {
			t.Errorf("%+v", svc)
		}
	})
	t.Run("comment ending in colon does not swallow a misspelt key", func(t *testing.T) {
		_, warns, err := Parse("t.pfile", []byte(pf(lProc, lRS, "# retries:", "retry_cont 7")))
		if len(warns) != 0 || err == nil || !strings.Contains(err.Error(), `t.pfile:4:1: unknown key "retry_cont" (did you mean retry_count?)`) {
			t.Errorf("warnings %v, error %v", warns, err)
		}
	})
	t.Run("blank line ends a wrapped comment", func(t *testing.T) {
		_, _, err := Parse("t.pfile", []byte(pf(lProc, lRS, "# note:", "", "  <port>")))
		if err == nil || !strings.Contains(err.Error(), `t.pfile:5:3: expected a key`) {
			t.Errorf("error %v", err)
		}
	})
}

// Blocks: where the brace goes, several blocks, and their warnings.
func TestBlockLayout(t *testing.T) {
	t.Run("brace on the next line", func(t *testing.T) {
		svc, _ := mustParse(t, pf(lProc, lRS, "_bi_webserv", "{", lExec, lAct, "}  # end"))
		if len(svc.Checks) != 1 {
			t.Errorf("%+v", svc)
		}
	})
	t.Run("brace after a space", func(t *testing.T) {
		svc, _ := mustParse(t, pf(lProc, lRS, "_bi_webserv {", lExec, lAct, "}"))
		if len(svc.Checks) != 1 {
			t.Errorf("%+v", svc)
		}
	})
	t.Run("two blocks", func(t *testing.T) {
		svc, _ := mustParse(t, pf(lProc, lRS, lOpen, lExec, lAct, lClose,
			"_bi_socket{",
			"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-:60:0:2:600:8443",
			"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-::-:1:0", lClose))
		if len(svc.Checks) != 2 || svc.Checks[1].Kind != KindTCP || svc.Checks[1].Line != 7 {
			t.Errorf("%+v", svc.Checks)
		}
	})
	t.Run("ignored PS_EXEC timeout is a warning", func(t *testing.T) {
		_, warns := mustParse(t, pf(lProc, lRS, lOpen, execHead+"30:60:0:2:600:8080", lAct, lClose))
		if len(warns) != 1 || warns[0].String() != `t.pfile:4:57: warning: PS_EXEC timeout field "30" is ignored: the probe timeout is argv[3] (after duration, port and host)` {
			t.Errorf("warnings %v", warns)
		}
	})
	t.Run("the guide's lib_bi_websevs.so is https, with one warning", func(t *testing.T) {
		const lib = "DLL:/opt/HA/PSWE/lib/lib_bi_websevs.so:DIRECT:"
		svc, warns := mustParse(t, pf(lProc, lRS, "_bi_websevs{",
			"PS_INIT   "+lib+"-::-:0",
			"PS_EXEC   "+lib+"-:60:0:2:600:443",
			"PS_ACTION "+lib+"-::-:1:0",
			"PS_QUIT   "+lib+"-::-:0", "}"))
		if len(svc.Checks) != 1 || svc.Checks[0].Kind != KindHTTPS || svc.Checks[0].Library != "/opt/HA/PSWE/lib/lib_bi_websevs.so" {
			t.Errorf("checks %+v, want one https check naming the library as written", svc.Checks)
		}
		want := "t.pfile:4:15: warning: PS_INIT: library lib_bi_websevs.so is taken as lib_bi_webservs.so (https): " +
			"the guide's section 3.3 tables print this spelling, its sample writes lib_bi_webservs.so"
		if len(warns) != 1 || warns[0].String() != want {
			t.Errorf("warnings %v, want only %q", warns, want)
		}
	})
	t.Run("tls_ca without tls_verify is a warning", func(t *testing.T) {
		_, warns := mustParse(t, pf(lProc, lRS, "_bi_webservs{",
			"PS_EXEC DLL:/l/lib_bi_webservs.so:DIRECT:-:60:0:2:600:443",
			"PS_ACTION DLL:/l/lib_bi_webservs.so:DIRECT:-::-:1:0", "tls_ca /etc/ca.pem", "}"))
		if len(warns) != 1 || warns[0].String() != "t.pfile:6:8: warning: tls_ca has no effect without tls_verify yes" {
			t.Errorf("warnings %v", warns)
		}
	})
}

// The keys of padmin check --json (docs/pfile.md, "Checking a pfile").
func TestRulesJSON(t *testing.T) {
	svc, _, err := LoadFile(filepath.Join(samplesDir, "sample3.pfile"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	wantKeys := []string{"args", "checks", "cpu_max", "fds_max", "grace", "kill_timeout",
		"limit_action", "limit_for", "limit_grace", "memory_max", "min_count", "name", "pidfile", "process",
		"rearm_after", "recovery_timeout", "restart_script", "restart_timeout", "retry_backoff", "retry_count", "retry_interval",
		"retry_interval_max", "retry_over_action", "retry_over_script", "stable_uptime", "start_on_load", "threads_max", "user"}
	if got := keys(m); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("keys %v, want %v", got, wantKeys)
	}
	checks := m["checks"].([]any)
	c := checks[0].(map[string]any)
	wantCheck := map[string]any{
		"check": "https", "block": "_bi_webservs", "line": 9.0, "library": "/opt/HA/PSWE/lib/lib_bi_webservs.so",
		"interval": 60.0, "error": 0.0, "duration": 600.0, "port": 433.0, "host": "localhost",
		"timeout": 5.0, "path": "/", "action_error": 1.0, "tls_verify": false, "tls_ca": nil,
		"tls_server_name": "localhost", "expect_status": nil, "listen_check": true,
	}
	if !reflect.DeepEqual(c, wantCheck) {
		t.Errorf("check\n%v\nwant\n%v", c, wantCheck)
	}
	if m["grace"] != 86400.0 || m["retry_over_action"] != "continue" || m["args"] != nil || m["start_on_load"] != true {
		t.Errorf("service %v", m)
	}

	// The JSON view reads back into Rules unchanged.
	var r Rules
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, svc.Rules()) {
		t.Errorf("round trip\n%+v\n%+v", r, svc.Rules())
	}

	// Set values: expect_status as {min,max}, recovery_timeout in seconds.
	svc, _ = mustParse(t, pf(lProc, lRS, "retry_over_action reboot", "recovery_timeout 300", lOpen, lExec, lAct, "expect_status 200-399", lClose))
	b, _ = json.Marshal(svc)
	if !strings.Contains(string(b), `"recovery_timeout":300`) || !strings.Contains(string(b), `"expect_status":{"min":200,"max":399}`) {
		t.Errorf("json %s", b)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b, filepath.Join(dir, "empty")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := pf(lProc, lRS)
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(a, "web.pfile"), good)
	write(filepath.Join(b, "web.pfile"), good)
	write(filepath.Join(a, "notes.txt"), "not a pfile")
	write(filepath.Join(a, ".hidden.pfile"), "garbage")

	svcs, _, err := Load(a)
	if err != nil || len(svcs) != 1 || svcs[0].Name != "web" {
		t.Errorf("Load(a): %v %v", svcs, err)
	}
	_, _, err = Load(a, b)
	if want := filepath.Join(b, "web.pfile") + `: service name "web" is already used by ` + filepath.Join(a, "web.pfile"); err == nil || err.Error() != want {
		t.Errorf("duplicate names: %v, want %s", err, want)
	}
	_, _, err = Load(filepath.Join(dir, "empty"))
	if want := filepath.Join(dir, "empty") + ": no *.pfile files in this directory"; err == nil || err.Error() != want {
		t.Errorf("empty dir: %v", err)
	}
	_, _, err = Load(filepath.Join(dir, "missing.pfile"))
	if want := filepath.Join(dir, "missing.pfile") + ": stat: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing: %v", err)
	}
	big := filepath.Join(dir, "big.pfile")
	write(big, good+strings.Repeat("#\n", MaxFileSize))
	if _, _, err = LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big: %v", err)
	}
	if _, _, err := LoadFile(a); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("dir as file: %v", err)
	}
}

func TestNoPanicOnOddInput(t *testing.T) {
	for _, src := range []string{
		"{", "}", "_bi_", "_bi_x", "PS_EXEC", "PS_EXEC :", "\\", "a\\", "\"", "process \"", "#:", "#:\n:",
		"_bi_x{\nPS_EXEC ::::::::\n}", "_bi_x{\nPS_ACTION :::::\n}", "_bi_x{\nPS_EXEC DLL:\n", "args \"(\"",
		"_bi_x{\nPS_EXEC DLL:/a/lib_bi_socket.so:DIRECT:-:-:-:2:-:[::1\n}", "\r", "\n\n\n", "process /x \\\n",
	} {
		svc, _, err := Parse("t.pfile", []byte(src))
		if (svc == nil) == (err == nil) {
			t.Errorf("%q: service %v, error %v", src, svc, err)
		}
	}
}

// The backoff keys' defaults follow each other: the cap defaults to 300 s
// (or retry_interval, if longer) once retry_backoff is set, stable_uptime
// to 60 s or grace if shorter.
func TestBackoffDefaults(t *testing.T) {
	for _, c := range []struct {
		lines         []string
		max, stable   time.Duration
		wantMaxInJSON bool
		wantBackoff   float64
	}{
		{nil, 0, 60 * time.Second, false, 1},
		{[]string{"grace 20"}, 0, 20 * time.Second, false, 1},
		{[]string{"retry_interval 2", "retry_backoff 2"}, 300 * time.Second, 60 * time.Second, true, 2},
		{[]string{"retry_interval 400", "retry_backoff 2"}, 400 * time.Second, 60 * time.Second, true, 2},
		{[]string{"retry_interval 1", "retry_backoff 1.25", "retry_interval_max 8", "stable_uptime 5"}, 8 * time.Second, 5 * time.Second, true, 1.25},
	} {
		svc, _ := mustParse(t, pf(append([]string{lProc, lRS}, c.lines...)...))
		if svc.RetryIntervalMax != c.max || svc.StableUptime != c.stable || svc.RetryBackoff != c.wantBackoff {
			t.Errorf("%q: max %s stable %s backoff %v, want %s %s %v", c.lines, svc.RetryIntervalMax, svc.StableUptime, svc.RetryBackoff, c.max, c.stable, c.wantBackoff)
		}
		if r := svc.Rules(); (r.RetryIntervalMax != nil) != c.wantMaxInJSON || r.StableUptime != int64(c.stable/time.Second) {
			t.Errorf("%q: rules %+v", c.lines, r)
		}
	}
}

// Effective rules leave out where blocks were written, nothing else.
func TestEffectiveRulesIgnoreLines(t *testing.T) {
	a, _ := mustParse(t, pf(lProc, lRS, lOpen, lExec, lAct, lClose))
	b, _ := mustParse(t, pf("# a comment", "", lProc, lRS, lOpen, lExec, lAct, lClose))
	c, _ := mustParse(t, pf(lProc, lRS, "retry_count 4", lOpen, lExec, lAct, lClose))
	if reflect.DeepEqual(a.Rules(), b.Rules()) {
		t.Fatal("the test needs rules that differ in their line numbers")
	}
	if !reflect.DeepEqual(a.Rules().Effective(), b.Rules().Effective()) {
		t.Error("a comment changed the effective rules")
	}
	if reflect.DeepEqual(a.Rules().Effective(), c.Rules().Effective()) {
		t.Error("retry_count 4 did not change the effective rules")
	}
	if a.Rules().Checks[0].Line != 3 {
		t.Error("Effective changed the rules it was called on")
	}
}

// The name rules' lengths, checked apart from their patterns.
func TestUserAndHostNameLengths(t *testing.T) {
	long := func(n int) string { return "a" + strings.Repeat("b", n-1) }
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{long(32), true}, {long(32) + "$", true}, {long(33), false},
		{"_x", true}, {"-x", false}, {"a$b", false}, {"", false},
	} {
		if got := isUserName(c.name); got != c.ok {
			t.Errorf("isUserName(%q) = %v", c.name, got)
		}
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{long(253), true}, {long(254), false}, {"a.example", true},
		{".a", false}, {"-a", false}, {"a b", false}, {"", false},
	} {
		if got := isHostName(c.name); got != c.ok {
			t.Errorf("isHostName(%q) = %v", c.name, got)
		}
	}
}
