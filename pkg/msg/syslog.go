// SPDX-License-Identifier: Apache-2.0

package msg

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/internal/quote"
)

// syslogWriter sends lines to the local syslog socket (/dev/log) framed as
// glibc's syslog(3) frames them for that socket, RFC 3164 style:
//
//	<PRI>Mmm dd hh:mm:ss ident[pid]: message
//
// There is no hostname: on the local socket glibc sends none and the syslog
// daemon adds it, which is how the guide's "May 24 09:35:26 hostname
// pcheck[1234]: msg" lines come to be.
//
// It never holds the daemon up for long and never gives up for good:
//   - A missing or refusing socket warns once on stderr per outage; every
//     later line tries to connect again, so a syslog daemon started (or
//     restarted) after pcheck is picked up at its next line.
//   - A socket whose buffer stays full for the write timeout drops the line
//     (it is on stderr anyway): the first drop of a run warns, and the
//     next delivered line reports how many were dropped.
type syslogWriter struct {
	path     string
	ident    string
	pid      int
	facility Facility
	timeout  time.Duration
	now      func() time.Time // the timestamp's clock
	diag     *slog.Logger     // stderr, for the writer's own trouble

	mu         sync.Mutex // serialises lines and guards what follows
	conn       net.Conn
	stream     bool // conn is SOCK_STREAM: lines end with '\n'
	runDropped int  // lines not delivered since the last delivered one
	dropped    uint64
}

// frame builds one line; stream sockets need a terminator to split lines,
// datagrams do not (glibc sends none). The text passes quote.Line: a raw
// newline in it would end the record early on a stream socket and let
// what follows pass for a record of its own, so none is ever written.
func (w *syslogWriter) frame(sev Severity, text string, at time.Time, stream bool) []byte {
	line := fmt.Sprintf("<%d>%s %s[%d]: %s", Priority(w.facility, sev),
		at.Format(time.Stamp), w.ident, w.pid, quote.Line(text))
	if stream {
		line += "\n"
	}
	return []byte(line)
}

// write sends one line, connecting first when needed. A send that fails for
// another reason than a full buffer means the daemon went away (it was
// restarted and its socket recreated): reconnect once and resend, as glibc
// does.
func (w *syslogWriter) write(sev Severity, text string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	for range 2 {
		if w.conn == nil {
			if err = w.dial(); err != nil {
				break
			}
		}
		err = w.send(w.frame(sev, text, at, w.stream))
		if err == nil {
			w.delivered()
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if w.stream { // a partial line would garble the next ones
				w.closeConn()
			}
			w.drop(err, "syslog socket stayed full; dropping lines (they still go to stderr)")
			return
		}
		w.closeConn()
	}
	w.drop(err, "syslog unavailable; lines go to stderr only until it is back")
}

func (w *syslogWriter) dial() error {
	// /dev/log is a datagram socket (journald, rsyslog); some syslog-ng
	// setups make it a stream socket, which refuses datagrams with
	// EPROTOTYPE.
	for _, network := range []string{"unixgram", "unix"} {
		c, err := net.DialTimeout(network, w.path, w.timeout)
		if err == nil {
			w.conn, w.stream = c, network == "unix"
			return nil
		}
		if !errors.Is(err, syscall.EPROTOTYPE) {
			return err
		}
	}
	return fmt.Errorf("%s: neither a datagram nor a stream socket accepts lines", w.path)
}

func (w *syslogWriter) send(line []byte) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	_, err := w.conn.Write(line)
	return err
}

func (w *syslogWriter) closeConn() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

func (w *syslogWriter) delivered() {
	if w.runDropped > 0 {
		w.diag.Info("syslog delivers lines again", "socket", w.path, "dropped", w.runDropped)
	}
	w.runDropped = 0
}

func (w *syslogWriter) drop(err error, warning string) {
	w.dropped++
	w.runDropped++
	if w.runDropped == 1 { // once per run of undelivered lines
		w.diag.Warn(warning, "socket", w.path, "error", err.Error(), "dropped_total", w.dropped)
	}
}

// dropUndelivered counts a line Close had no time left to send.
func (w *syslogWriter) dropUndelivered() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropped++
}

// droppedTotal counts the lines syslog never got since the start.
func (w *syslogWriter) droppedTotal() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

func (w *syslogWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closeConn()
	return nil
}
