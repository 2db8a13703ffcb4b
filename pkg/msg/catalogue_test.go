// SPDX-License-Identifier: Apache-2.0

package msg

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestCatalogueTexts(t *testing.T) {
	for _, tc := range []struct {
		m     Message
		text  string
		level slog.Level
	}{
		{Down("apache2", 1234), "Process ['apache2',pid=1234] Down", slog.LevelWarn},
		{TryRestart("apache2", "down", 1), "Try to restart ('apache2')", slog.LevelInfo},
		{Up("apache2", 1300), "('apache2',pid=1300) Up", slog.LevelInfo},
		{SetPidFail("apache2", errors.New("script timed out")), "Set pid fail ('apache2')", slog.LevelError},
		{SetPidFail("apache2", nil), "Set pid fail ('apache2')", slog.LevelError},
		{RetryOver("apache2", "exit"), "Retry over ('apache2') action=exit", slog.LevelError},
		{WebStall("apache2", 1234, 80), "Find Web Server Stall: pid = 1234 : port = 80", slog.LevelError},
		{SocketStall("tomcat", 77, 8080), "Find Socket Service Stall: pid = 77 : port = 8080", slog.LevelError},
		{Killed("apache2", 1234), "Killed Process: pid= 1234", slog.LevelWarn},
		{KillFailed("apache2", 1234, errors.New("EPERM")), "Can not killed Process: pid= 1234", slog.LevelError},
		{RebootThresholdReached("apache2"), "Reboot threshold reached ('apache2')", slog.LevelError},
		{CommandExecute(CommandStop, "apache2"), "Command execute. [stop] pfile='apache2'", slog.LevelInfo},
		{CommandExecute(CommandStart, "apache2"), "Command execute. [start] pfile='apache2'", slog.LevelInfo},
		{CommandExecute(CommandReload, "apache2"), "Command execute. [reload] pfile='apache2'", slog.LevelInfo},
		{CommandExecute(CommandReload, ""), "Command execute. [reload] pfile=''", slog.LevelInfo},
		{Ended("apache2", 1234, Exited(3)), "Process ['apache2',pid=1234] exited with status 3", slog.LevelWarn},
		// pwatch's own diagnostics beside the catalogue.
		{RecoveryTimeout("apache2", 30*time.Second), "Recovery timeout ('apache2'): not back within 30s; rebooting", slog.LevelError},
		{DeathWatchStopped("ebpf"), "Death watch stopped ('ebpf'): no exit can be seen any more; pcheck ends", slog.LevelError},
		{Adopted("apache2", []int{1234, 1240}), "Running service adopted ('apache2',pid=1234,1240)", slog.LevelInfo},
		{OrphansKilled("apache2", []int{1241}), "Orphaned processes of a dead master killed ('apache2',pid=1241)", slog.LevelWarn},
		{OverLimit("php", 412, "memory_max", "1.21 GiB", "1 GiB", 30*time.Second), "Process ['php',pid=412] over memory_max: 1.21 GiB > 1 GiB for 30 s, restarting", slog.LevelWarn},
		{OverLimitLogged("php", 412, "cpu_max", "93%", "50%", 2500*time.Millisecond), "Process ['php',pid=412] over cpu_max: 93% > 50% for 3 s", slog.LevelWarn},
		{Rebooting("apache2"), "Rebooting the node ('apache2')", slog.LevelError},
		{Rearmed("apache2", 10*time.Minute), "Retry over re-armed ('apache2'): trying again after 10m0s, attempts reset", slog.LevelWarn},
		{Reloaded("apache2"), "Rules reloaded (pfile='apache2')", slog.LevelInfo},
		{Reloaded(""), "Rules reloaded (pfile='')", slog.LevelInfo},
		{ReloadRefused("", 2), "Reload refused (pfile=''): 2 errors; the running rules stay", slog.LevelError},
		{CommandExecute(CommandRestart, "apache2"), "Command execute. [restart] pfile='apache2'", slog.LevelInfo},
		{ProgramRefused("apache2", "/tmp/x.restart", "/tmp/x.restart: owned by uid 65534 (nobody), not root; pcheck runs it as root"), "Program refused ('apache2',/tmp/x.restart): /tmp/x.restart: owned by uid 65534 (nobody), not root; pcheck runs it as root; not run", slog.LevelError},
	} {
		if tc.m.Text != tc.text || tc.m.String() != tc.text {
			t.Errorf("text = %q, want %q", tc.m.Text, tc.text)
		}
		if tc.m.Level != tc.level {
			t.Errorf("%q: level = %v, want %v", tc.text, tc.m.Level, tc.level)
		}
		if attrValue(tc.m, KeyEvent) == nil {
			t.Errorf("%q: no %s field", tc.text, KeyEvent)
		}
	}
}

func TestEndingTexts(t *testing.T) {
	for _, tc := range []struct {
		e    Ending
		want string
	}{
		{Exited(3), "exited with status 3"},
		{Exited(0), "exited with status 0"},
		{KilledBy(9, false), "killed by signal 9 (SIGKILL)"},
		{KilledBy(11, true), "killed by signal 11 (SIGSEGV), core dumped"},
		{KilledBy(15, false), "killed by signal 15 (SIGTERM)"},
		{KilledBy(40, false), "killed by signal 40"}, // real-time: no name
		{KilledBy(-1, false), "killed by signal -1"}, // garbage in, no panic
		{Ending{}, "exited (status unknown)"},
		{Ending{Known: true, Signal: 9, OOM: true}, "killed by the OOM killer"},
		{Ending{Known: true, Signal: 9, OOM: true, Memcg: "/web", RSSKiB: 524288}, "killed by the OOM killer (memory cgroup /web, rss 524288 kB)"},
		{Ending{Known: true, Signal: 9, SenderPID: 4321, SenderComm: "kill"}, "killed by signal 9 (SIGKILL), sent by pid 4321 (kill, uid 0)"},
		{Ending{Known: true, Signal: 9, SenderPID: 77, SenderComm: "pcheck", ByPcheck: "stall check"}, "killed by signal 9 (SIGKILL), sent by pcheck (stall check)"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestFields(t *testing.T) {
	m := Ended("web", 12, KilledBy(11, true))
	want := map[string]any{
		KeyService: "web", KeyPID: int64(12), KeySignal: int64(11),
		KeySignalName: "SIGSEGV", KeyCoreDumped: true,
	}
	for k, v := range want {
		if got := attrValue(m, k); got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if got := attrValue(Ended("web", 12, Exited(3)), KeyExitStatus); got != int64(3) {
		t.Errorf("exit_status = %v, want 3", got)
	}
	if got := attrValue(Ended("web", 12, Ending{}), KeyStatusKnown); got != false {
		t.Errorf("status_known = %v, want false", got)
	}
	if got := attrValue(TryRestart("web", "stall", 2), KeyReason); got != "stall" {
		t.Errorf("reason = %v, want stall", got)
	}
	if got := attrValue(SetPidFail("web", errors.New("timed out")), KeyError); got != "timed out" {
		t.Errorf("error = %v", got)
	}
	if got := attrValue(SetPidFail("web", nil), KeyError); got != nil {
		t.Errorf("nil cause gave error field %v", got)
	}
}

func attrValue(m Message, key string) any {
	for _, a := range m.Attrs {
		if a.Key == key {
			return a.Value.Any()
		}
	}
	return nil
}

func TestParseFacility(t *testing.T) {
	for name, want := range map[string]Facility{
		"daemon": 3, "user": 1, "local0": 16, "LOCAL7": 23, "LOG_AUTHPRIV": 10, " cron ": 9,
	} {
		got, err := ParseFacility(name)
		if err != nil || got != want {
			t.Errorf("ParseFacility(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "local8", "deamon", "3", "kern"} {
		if _, err := ParseFacility(bad); err == nil {
			t.Errorf("ParseFacility(%q) took it", bad)
		}
	}
	if Daemon.String() != "daemon" {
		t.Errorf("Daemon = %s", Daemon)
	}
}

func TestSeverityAndPriority(t *testing.T) {
	for l, want := range map[slog.Level]Severity{
		slog.LevelError: 3, slog.LevelWarn: 4, slog.LevelInfo: 6, slog.LevelDebug: 7, slog.LevelError + 4: 3,
	} {
		if got := SeverityOf(l); got != want {
			t.Errorf("SeverityOf(%v) = %d, want %d", l, got, want)
		}
	}
	if p := Priority(Daemon, SeverityWarning); p != 28 {
		t.Errorf("daemon.warning = %d, want 28", p)
	}
}
