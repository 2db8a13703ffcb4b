// SPDX-License-Identifier: Apache-2.0

package msg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
)

// syncBuffer is written concurrently while the test reads it.
type syncBuffer = syncbuf.Buffer

func newLogger(t *testing.T, cfg msg.Config) (*msg.Logger, *syncBuffer) {
	t.Helper()
	stderr := &syncBuffer{}
	cfg.Stderr = stderr
	if cfg.Ident == "" {
		cfg.Ident = "pcheck"
	}
	l, err := msg.NewLogger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, stderr
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSyslogFraming(t *testing.T) {
	srv := syslogtest.Listen(t)
	at := time.Date(2026, time.May, 4, 9, 35, 26, 0, time.Local)
	local3, _ := msg.ParseFacility("local3")
	l, _ := newLogger(t, msg.Config{
		SyslogSocket: srv.Path(), Facility: local3, PID: 4242,
		Now: func() time.Time { return at },
	})

	l.Log(msg.Down("apache2", 1234))
	l.Log(msg.Up("apache2", 1300))

	m, err := srv.WaitFor(waitCtx(t), "Process ['apache2',pid=1234] Down")
	if err != nil {
		t.Fatal(err)
	}
	// glibc's syslog(3) to /dev/log: no hostname, day padded with a space.
	if want := "<156>May  4 09:35:26 pcheck[4242]: Process ['apache2',pid=1234] Down"; m.Raw != want {
		t.Errorf("raw line\n got %q\nwant %q", m.Raw, want)
	}
	if m.Facility != 19 || m.Severity != 4 || m.Ident != "pcheck" || m.PID != 4242 || m.Hostname != "" {
		t.Errorf("parsed %+v", m)
	}
	up, err := srv.WaitFor(waitCtx(t), "('apache2',pid=1300) Up")
	if err != nil {
		t.Fatal(err)
	}
	if up.Severity != 6 {
		t.Errorf("Up severity = %d, want 6 (info)", up.Severity)
	}
}

func TestStderrJSON(t *testing.T) {
	l, stderr := newLogger(t, msg.Config{Format: "json"})
	e := msg.KilledBy(9, false)
	e.SenderPID, e.SenderComm, e.SenderUID = 4321, "kill", 0
	l.Log(msg.Ended("nginx", 99, e))

	var line map[string]any
	if err := json.Unmarshal([]byte(stderr.String()), &line); err != nil {
		t.Fatalf("%v: %q", err, stderr.String())
	}
	want := map[string]any{
		"level": "WARN", "msg": "Process ['nginx',pid=99] killed by signal 9 (SIGKILL), sent by pid 4321 (kill, uid 0)", "event": "ended",
		"service": "nginx", "pid": 99.0, "signal": 9.0, "signal_name": "SIGKILL", "core_dumped": false,
		"cause": "signal", "oom": false, "sender_pid": 4321.0, "sender_comm": "kill", "sender_uid": 0.0,
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
}

func TestStderrText(t *testing.T) {
	l, stderr := newLogger(t, msg.Config{})
	l.Log(msg.TryRestart("web", "stall", 2))
	for _, want := range []string{`level=INFO`, `msg="Try to restart ('web')"`, `service=web`, `reason=stall`, `attempt=2`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q lacks %s", stderr.String(), want)
		}
	}
}

func TestBadFormat(t *testing.T) {
	if _, err := msg.NewLogger(msg.Config{Ident: "pcheck", Format: "xml"}); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("format xml: %v", err)
	}
}

// A missing socket warns once, keeps going, and a syslog started later gets
// the next line.
func TestMissingSocketWarnsOnceThenRecovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, stderr := newLogger(t, msg.Config{SyslogSocket: path})
	for i := range 3 {
		l.Log(msg.Down("web", 100+i))
	}
	l.Flush()
	if n := strings.Count(stderr.String(), "syslog unavailable"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, stderr)
	}
	if n := strings.Count(stderr.String(), "Process ['web',pid="); n != 3 {
		t.Errorf("stderr has %d of 3 lines:\n%s", n, stderr)
	}
	if d := l.SyslogDropped(); d != 3 {
		t.Errorf("dropped = %d, want 3", d)
	}

	srv := syslogtest.ListenAt(t, path)
	l.Log(msg.Up("web", 200))
	if _, err := srv.WaitFor(waitCtx(t), "('web',pid=200) Up"); err != nil {
		t.Fatal(err)
	}
	l.Flush() // the note follows the delivery
	if !strings.Contains(stderr.String(), "syslog delivers lines again") || !strings.Contains(stderr.String(), "dropped=3") {
		t.Errorf("no recovery note:\n%s", stderr)
	}

	// An outage after that warns again, once.
	srv.Close()
	l.Log(msg.Down("web", 200))
	l.Log(msg.Down("web", 201))
	l.Flush()
	if n := strings.Count(stderr.String(), "syslog unavailable"); n != 2 {
		t.Errorf("%d warnings after second outage, want 2:\n%s", n, stderr)
	}
}

// A syslog daemon restarted (its socket recreated) gets the next line with
// no loss: the stale connection is dropped and redialled at once.
func TestSyslogRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	first := syslogtest.ListenAt(t, path)
	l, stderr := newLogger(t, msg.Config{SyslogSocket: path})
	l.Log(msg.Down("web", 1))
	if _, err := first.WaitFor(waitCtx(t), "Process ['web',pid=1] Down"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := syslogtest.ListenAt(t, path)
	l.Log(msg.Up("web", 2))
	if _, err := second.WaitFor(waitCtx(t), "('web',pid=2) Up"); err != nil {
		t.Fatal(err)
	}
	if l.SyslogDropped() != 0 || strings.Contains(stderr.String(), "syslog unavailable") {
		t.Errorf("restart lost a line: dropped %d\n%s", l.SyslogDropped(), stderr)
	}
}

// A stream /dev/log (some syslog-ng setups) gets newline-terminated lines.
func TestStreamSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, _ := newLogger(t, msg.Config{SyslogSocket: path}) // facility left to its default, daemon
	l.Log(msg.RetryOver("web", "continue"))
	l.Log(msg.CommandExecute(msg.CommandStop, "web"))

	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	buf := make([]byte, 4096)
	var pending string
	for len(got) < 2 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got)
		}
		pending += string(buf[:n])
		for {
			i := strings.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			got = append(got, pending[:i+1])
			pending = pending[i+1:]
		}
	}
	for i, want := range []string{"Retry over ('web') action=continue", "Command execute. [stop] pfile='web'"} {
		m, err := syslogtest.Parse(got[i])
		if err != nil || m.Text != want || m.Ident != "pcheck" || m.Facility != 3 {
			t.Errorf("line %d %q: %+v %v", i, got[i], m, err)
		}
	}
}

// A syslog that stops reading must not stall the daemon: lines are dropped
// after the write timeout, with one warning, and counted.
func TestFullSocketDrops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	stuck, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	l, stderr := newLogger(t, msg.Config{SyslogSocket: path, SyslogTimeout: 5 * time.Millisecond, SyslogQueue: 4})
	sent := 0
	for ; !strings.Contains(stderr.String(), "syslog socket stayed full") && sent < 100000; sent++ {
		l.Log(msg.Down("web", sent))
	}
	l.Flush()
	if l.SyslogDropped() < 1 {
		t.Fatalf("no drop after %d lines to a socket nobody reads", sent)
	}
	if n := strings.Count(stderr.String(), "syslog socket stayed full"); n != 1 {
		t.Errorf("%d full-socket warnings, want 1", n)
	}

	// Drain, and the next line gets through and reports the drops.
	buf := make([]byte, 4096)
	for {
		stuck.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := stuck.Read(buf); err != nil {
			break
		}
	}
	stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	l.Log(msg.Up("web", 7))
	n, err := stuck.Read(buf)
	if err != nil || !strings.HasSuffix(string(buf[:n]), "('web',pid=7) Up") {
		t.Fatalf("after drain: %q %v", buf[:n], err)
	}
	l.Flush() // the note follows the delivery
	// The note counts the lines the socket refused; the queue's drops are
	// in SyslogDropped too.
	note := regexp.MustCompile(`syslog delivers lines again.* dropped=([1-9][0-9]*)`).FindStringSubmatch(stderr.String())
	if note == nil {
		t.Fatalf("no count of dropped lines:\n%s", stderr)
	}
	if n, _ := strconv.Atoi(note[1]); uint64(n) > l.SyslogDropped() {
		t.Errorf("the note counts %d dropped, SyslogDropped %d", n, l.SyslogDropped())
	}
}

// A syslog that takes lines but never reads them must not hold up whoever
// logs (a recovery): Log queues and returns, what does not fit is dropped
// and counted, and stderr has every line. The write timeout here is long
// enough that one synchronous line per Log would never finish in time.
func TestStuckSyslogNeverDelaysLogging(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	stuck, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	const queue, lines = 16, 2000
	l, stderr := newLogger(t, msg.Config{SyslogSocket: path, SyslogTimeout: 2 * time.Second, SyslogQueue: queue})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range lines {
			l.Log(msg.Down("web", i))
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Log waited for a syslog that does not read")
	}
	if n := strings.Count(stderr.String(), "Process ['web',pid="); n != lines {
		t.Errorf("stderr has %d of %d lines", n, lines)
	}
	// The socket's own buffer takes some lines, the queue a few more:
	// the rest is dropped and counted.
	if d := l.SyslogDropped(); d == 0 {
		t.Error("no line counted as dropped")
	}
	if !strings.Contains(stderr.String(), "syslog queue full") {
		t.Errorf("no warning of the full queue:\n%.2000s", stderr)
	}
}

func TestConcurrentLog(t *testing.T) {
	srv := syslogtest.Listen(t)
	l, _ := newLogger(t, msg.Config{SyslogSocket: srv.Path(), SyslogTimeout: 10 * time.Second})
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				l.Log(msg.Up(fmt.Sprintf("svc%d", w), i))
			}
		})
	}
	wg.Wait()
	last := fmt.Sprintf("('svc%d',pid=%d) Up", 0, each-1)
	if _, err := srv.WaitFor(waitCtx(t), last); err != nil {
		t.Fatal(err)
	}
	received := 0
	if _, err := srv.WaitMatch(waitCtx(t), "every line", func(syslogtest.Message) bool {
		received++
		return received == workers*each
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range srv.Messages() {
		if m.Err != nil {
			t.Errorf("garbled line %q: %v", m.Raw, m.Err)
		}
	}
}

// BenchmarkLogToSyslog is the cost of one catalogue line to stderr (a
// buffer here) and a syslog socket whose reader keeps up.
func BenchmarkLogToSyslog(b *testing.B) {
	path := filepath.Join(b.TempDir(), "log")
	sink, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", SyslogSocket: path, Stderr: io.Discard, SyslogTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	m := msg.Down("apache2", 1234)
	b.ReportAllocs()
	// Lines are queued and sent by the logger's goroutine: flushing every
	// few hundred keeps the queue from overflowing and counts the sending.
	n := 0
	for b.Loop() {
		l.Log(m)
		if n++; n%256 == 0 {
			l.Flush()
		}
	}
	l.Flush()
	if d := l.SyslogDropped(); d != 0 {
		b.Fatalf("%d lines dropped", d)
	}
}

// BenchmarkLogToStuckSyslog is the cost of one catalogue line when syslog
// takes lines but never reads them (a hung syslog daemon): what a recovery
// pays per line. Synchronous sends paid the write timeout (200 ms) per line
// once the socket was full.
func BenchmarkLogToStuckSyslog(b *testing.B) {
	path := filepath.Join(b.TempDir(), "log")
	stuck, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer stuck.Close()
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", SyslogSocket: path, Stderr: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	m := msg.Down("apache2", 1234)
	b.ReportAllocs()
	for b.Loop() {
		l.Log(m)
	}
}
