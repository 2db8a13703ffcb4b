// SPDX-License-Identifier: Apache-2.0

// Package syslogtest is a syslog daemon for tests: a unixgram socket that
// collects and parses what is sent to it, so that a test can wait for an
// exact syslog line.
package syslogtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one received line.
type Message struct {
	Raw       string
	Priority  int
	Facility  int
	Severity  int
	Timestamp string // "Mmm dd hh:mm:ss" as sent (RFC 3164 has no year)
	Hostname  string // empty on the local socket, as glibc sends
	Ident     string
	PID       int // 0 when the line has no [pid]
	Text      string
	// Err is set when Raw is not an RFC 3164 line; the fields are then empty.
	Err error
}

// Server collects the lines sent to its socket until the test ends.
type Server struct {
	path string
	conn *net.UnixConn
	done chan struct{}

	closeOnce sync.Once

	mu       sync.Mutex
	messages []Message
	arrived  chan struct{} // closed and replaced at every new line
}

// Listen opens a unixgram socket in t.TempDir() and collects until the
// test's cleanup.
func Listen(t testing.TB) *Server {
	t.Helper()
	return ListenAt(t, filepath.Join(t.TempDir(), "log"))
}

// ListenAt opens the socket at path (which must not exist), for tests that
// start, stop and restart "syslog" at one place.
func ListenAt(t testing.TB, path string) *Server {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("syslogtest: %v", err)
	}
	s := &Server{path: path, conn: conn, done: make(chan struct{}), arrived: make(chan struct{})}
	go s.receive()
	t.Cleanup(s.Close)
	return s
}

// Path is the socket to give the code under test (--syslog-socket).
func (s *Server) Path() string { return s.path }

// Close stops receiving and removes the socket, as a syslog daemon that
// stops would; the lines received stay readable. Closing twice is harmless.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.conn.Close()
		<-s.done
		os.Remove(s.path)
	})
}

func (s *Server) receive() {
	defer close(s.done)
	buf := make([]byte, 64*1024)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return // closed by cleanup
		}
		m, err := Parse(string(buf[:n]))
		if err != nil {
			m = Message{Raw: string(buf[:n]), Err: err}
		}
		s.mu.Lock()
		s.messages = append(s.messages, m)
		close(s.arrived)
		s.arrived = make(chan struct{})
		s.mu.Unlock()
	}
}

// Messages returns the lines received so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// WaitFor returns the first line (received before or after the call) whose
// text is exactly text.
func (s *Server) WaitFor(ctx context.Context, text string) (Message, error) {
	return s.WaitMatch(ctx, fmt.Sprintf("text %q", text), func(m Message) bool { return m.Text == text })
}

// WaitContains returns the first line whose text contains substr.
func (s *Server) WaitContains(ctx context.Context, substr string) (Message, error) {
	return s.WaitMatch(ctx, fmt.Sprintf("text containing %q", substr), func(m Message) bool {
		return strings.Contains(m.Text, substr)
	})
}

// WaitMatch returns the first line for which match is true; what describes
// it in the error when ctx ends first, which lists the lines received.
// match sees each line once, in the order received, so it may count.
func (s *Server) WaitMatch(ctx context.Context, what string, match func(Message) bool) (Message, error) {
	seen := 0
	for {
		s.mu.Lock()
		for ; seen < len(s.messages); seen++ {
			if match(s.messages[seen]) {
				m := s.messages[seen]
				s.mu.Unlock()
				return m, nil
			}
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("syslogtest: no line with %s (%w); received:%s", what, ctx.Err(), s.dump())
		}
	}
}

func (s *Server) dump() string {
	var b strings.Builder
	for _, m := range s.Messages() {
		fmt.Fprintf(&b, "\n\t%q", m.Raw)
	}
	if b.Len() == 0 {
		return " nothing"
	}
	return b.String()
}

// An RFC 3164 line as syslog(3), log/syslog and logger(1) send it to a local
// socket: <PRI>Mmm dd hh:mm:ss [hostname ]ident[[pid]]: text
var line = regexp.MustCompile(`^<(\d{1,3})>([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) (?:([^\s\[\]:]+) )?([^\s\[\]:]+)(?:\[(\d+)\])?: (.*)$`)

// Parse reads one RFC 3164 line; a trailing newline or NUL (stream
// framing) is ignored.
func Parse(raw string) (Message, error) {
	sm := line.FindStringSubmatch(strings.TrimRight(raw, "\n\x00"))
	if sm == nil {
		return Message{}, errors.New("syslogtest: not an RFC 3164 line")
	}
	pri, _ := strconv.Atoi(sm[1])
	if pri > 191 {
		return Message{}, fmt.Errorf("syslogtest: priority %d out of range", pri)
	}
	if _, err := time.Parse(time.Stamp, sm[2]); err != nil {
		return Message{}, fmt.Errorf("syslogtest: timestamp: %w", err)
	}
	m := Message{
		Raw: raw, Priority: pri, Facility: pri / 8, Severity: pri % 8,
		Timestamp: sm[2], Hostname: sm[3], Ident: sm[4], Text: sm[6],
	}
	if sm[5] != "" {
		m.PID, _ = strconv.Atoi(sm[5])
	}
	return m, nil
}
