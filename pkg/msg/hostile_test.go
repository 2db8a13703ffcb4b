// SPDX-License-Identifier: Apache-2.0

package msg_test

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
)

// hostileComm is what any user can write to /proc/self/comm before it
// sends a signal: a newline and a syslog priority (a forged record on a
// stream socket), an escape sequence (root's terminal), binary and
// invalid UTF-8.
const hostileComm = "x\n<11>F\033[8m\x01\xff"

const quotedComm = `x\x0a<11>F\x1b[8m\x01\xff`

func hostileEnding() msg.Ending {
	e := msg.KilledBy(9, false)
	e.SenderPID, e.SenderComm, e.SenderUID = 4321, hostileComm, 1000
	return e
}

// On a stream syslog socket a hostile sender's comm (and memcg) arrives
// quoted inside one record: no second record is forged, no control byte
// reaches the reader.
func TestHostileNamesOnStreamSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, _ := newLogger(t, msg.Config{SyslogSocket: path})
	l.Log(msg.Ended("web", 99, hostileEnding()))
	oom := msg.Ending{Known: true, Signal: 9, OOM: true, Memcg: "/a\nb\033", RSSKiB: 1}
	l.Log(msg.Ended("web", 98, oom))
	l.Syslog(msg.Severity(3), "a raw\n<11>line") // text that skipped the catalogue
	l.Close()

	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var all []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			break
		}
	}
	records := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
	want := []string{
		"Process ['web',pid=99] killed by signal 9 (SIGKILL), sent by pid 4321 (" + quotedComm + ", uid 1000)",
		`Process ['web',pid=98] killed by the OOM killer (memory cgroup /a\x0ab\x1b, rss 1 kB)`,
		`a raw\x0a<11>line`,
	}
	if len(records) != len(want) {
		t.Fatalf("got %d records, want %d: %q", len(records), len(want), all)
	}
	for i, r := range records {
		m, err := syslogtest.Parse(r + "\n")
		if err != nil || m.Text != want[i] {
			t.Errorf("record %d = %q (%v), want text %q", i, r, err, want[i])
		}
		if strings.ContainsAny(r, "\033\x01") {
			t.Errorf("record %d holds a control byte: %q", i, r)
		}
	}
}

// The datagram socket (the usual /dev/log) gets the same quoted text.
func TestHostileNamesOnDatagramSyslog(t *testing.T) {
	srv := syslogtest.Listen(t)
	l, _ := newLogger(t, msg.Config{SyslogSocket: srv.Path()})
	l.Log(msg.Ended("web", 99, hostileEnding()))
	want := "Process ['web',pid=99] killed by signal 9 (SIGKILL), sent by pid 4321 (" + quotedComm + ", uid 1000)"
	if _, err := srv.WaitFor(waitCtx(t), want); err != nil {
		t.Fatalf("%v; got %+v", err, srv.Messages())
	}
}

// The stderr line's message and sender_comm field carry the same quoted
// text, in text and in JSON form; a raw control wrapped in an error is
// quoted too.
func TestHostileNamesOnStderr(t *testing.T) {
	l, stderr := newLogger(t, msg.Config{Format: "json"})
	l.Log(msg.Ended("web", 99, hostileEnding()))
	var line map[string]any
	if err := json.Unmarshal([]byte(stderr.String()), &line); err != nil {
		t.Fatalf("%v: %q", err, stderr.String())
	}
	if line["sender_comm"] != quotedComm || !strings.Contains(line["msg"].(string), "("+quotedComm+", uid 1000)") {
		t.Errorf("json line %v: want sender_comm %q", line, quotedComm)
	}

	l2, text := newLogger(t, msg.Config{})
	l2.Log(msg.Ended("web", 99, hostileEnding()))
	l2.Slog().Warn("a script said\nsomething", "line", "out\033[2J", "err", errorString("bad\nname"))
	out := text.String()
	if strings.Count(out, "\n") != 2 || strings.ContainsAny(out, "\033\x01\xff") {
		t.Errorf("stderr holds a raw control byte or line break:\n%q", out)
	}
	for _, want := range []string{`line=out\x1b[2J`, `err=bad\x0aname`, `msg="a script said\\x0asomething"`} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr %q lacks %s", out, want)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
