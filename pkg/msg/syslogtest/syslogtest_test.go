// SPDX-License-Identifier: Apache-2.0

package syslogtest_test

import (
	"context"
	"log/syslog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
)

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want syslogtest.Message
	}{
		{"<28>May 24 09:35:26 pcheck[123]: Process ['web',pid=9] Down",
			syslogtest.Message{Priority: 28, Facility: 3, Severity: 4, Timestamp: "May 24 09:35:26", Ident: "pcheck", PID: 123, Text: "Process ['web',pid=9] Down"}},
		{"<13>Jan  2 03:04:05 host1 padmin[7]: Command execute. [stop] pfile='a'\n",
			syslogtest.Message{Priority: 13, Facility: 1, Severity: 5, Timestamp: "Jan  2 03:04:05", Hostname: "host1", Ident: "padmin", PID: 7, Text: "Command execute. [stop] pfile='a'"}},
		{"<30>Jan  2 03:04:05 pcheck: Find Web Server Stall: pid = 1 : port = 80\x00",
			syslogtest.Message{Priority: 30, Facility: 3, Severity: 6, Timestamp: "Jan  2 03:04:05", Ident: "pcheck", Text: "Find Web Server Stall: pid = 1 : port = 80"}},
	} {
		got, err := syslogtest.Parse(tc.raw)
		if err != nil {
			t.Errorf("%q: %v", tc.raw, err)
			continue
		}
		tc.want.Raw = tc.raw
		if got != tc.want {
			t.Errorf("%q\n got %+v\nwant %+v", tc.raw, got, tc.want)
		}
	}
	for _, bad := range []string{"", "hello", "<28>pcheck[1]: x", "<999>May 24 09:35:26 pcheck[1]: x", "<28>Foo 99 09:35:26 pcheck[1]: x"} {
		if m, err := syslogtest.Parse(bad); err == nil {
			t.Errorf("%q parsed as %+v", bad, m)
		}
	}
}

func TestWaitForReportsWhatArrived(t *testing.T) {
	srv := syslogtest.Listen(t)
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", SyslogSocket: srv.Path(), Stderr: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(msg.Up("web", 5))
	if _, err := srv.WaitContains(waitCtx(t), "pid=5) Up"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = srv.WaitFor(ctx, "('web',pid=5)") // a substring is not the exact text
	if err == nil || !strings.Contains(err.Error(), "('web',pid=5) Up") {
		t.Errorf("error should list the received line: %v", err)
	}
}

// Go's log/syslog frames lines for a local socket as glibc does; the parser
// must read them, which shows it reads real-world lines, not only ours.
func TestStdlibSyslogClient(t *testing.T) {
	srv := syslogtest.Listen(t)
	w, err := syslog.Dial("unixgram", srv.Path(), syslog.LOG_DAEMON|syslog.LOG_WARNING, "pcheck")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Warning("Process ['web',pid=9] Down"); err != nil {
		t.Fatal(err)
	}
	m, err := srv.WaitFor(waitCtx(t), "Process ['web',pid=9] Down")
	if err != nil {
		t.Fatal(err)
	}
	if m.Priority != 28 || m.Ident != "pcheck" || m.PID != os.Getpid() || m.Hostname != "" {
		t.Errorf("parsed %+v", m)
	}
}

// logger(1) from util-linux, the operator's own tool, sends the same framing.
func TestUtilLinuxLogger(t *testing.T) {
	bin, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("logger(1) from util-linux is not installed")
	}
	srv := syslogtest.Listen(t)
	out, err := exec.Command(bin, "-u", srv.Path(), "-d", "-p", "local3.err", "-t", "padmin", "--id=4321",
		"Command execute. [stop] pfile='web'").CombinedOutput()
	if err != nil {
		t.Fatalf("logger: %v: %s", err, out)
	}
	m, err := srv.WaitFor(waitCtx(t), "Command execute. [stop] pfile='web'")
	if err != nil {
		t.Fatal(err)
	}
	if m.Facility != 19 || m.Severity != 3 || m.Ident != "padmin" || m.PID != 4321 {
		t.Errorf("parsed %+v", m)
	}
}

// Our writer and logger(1) give the same line for the same message, apart
// from the timestamp.
func TestSameFramingAsLogger(t *testing.T) {
	bin, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("logger(1) from util-linux is not installed")
	}
	srv := syslogtest.Listen(t)
	text := "Retry over ('web') action=exit"
	if out, err := exec.Command(bin, "-u", srv.Path(), "-d", "-p", "daemon.err", "-t", "pcheck", "--id=77", text).CombinedOutput(); err != nil {
		t.Fatalf("logger: %v: %s", err, out)
	}
	theirs, err := srv.WaitFor(waitCtx(t), text)
	if err != nil {
		t.Fatal(err)
	}
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", PID: 77, Facility: msg.Daemon, SyslogSocket: srv.Path(), Stderr: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Log(msg.RetryOver("web", "exit"))
	received := 0
	ours, err := srv.WaitMatch(waitCtx(t), "the second line", func(syslogtest.Message) bool { received++; return received == 2 })
	if err != nil {
		t.Fatal(err)
	}
	noTime := func(m syslogtest.Message) string { return strings.Replace(m.Raw, m.Timestamp, "TIME", 1) }
	if noTime(ours) != noTime(theirs) {
		t.Errorf("ours %q, logger's %q", ours.Raw, theirs.Raw)
	}
}
