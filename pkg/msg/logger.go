// SPDX-License-Identifier: Apache-2.0

package msg

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwatch/pwatch/internal/quote"
)

// Config says where a Logger writes.
type Config struct {
	// Ident is the syslog tag: "pcheck" or "padmin".
	Ident string
	// Facility of the syslog lines (--syslog-facility, see ParseFacility);
	// 0 is Daemon.
	Facility Facility
	// SyslogSocket is the local syslog socket (--syslog-socket, normally
	// /dev/log); "" writes no syslog at all.
	SyslogSocket string
	// Stderr receives the slog lines; nil is os.Stderr.
	Stderr io.Writer
	// Format of the stderr lines: "text" (also "") or "json".
	Format string
	// Level is the least level written to stderr; nil is Info. Syslog
	// always gets every catalogue message.
	Level slog.Leveler
	// SyslogTimeout bounds how long one syslog line may wait for a full
	// socket buffer before it is dropped; 0 is 200ms.
	SyslogTimeout time.Duration
	// SyslogQueue is how many lines may wait for syslog; a line that finds
	// the queue full is dropped and counted. 0 is DefaultSyslogQueue.
	SyslogQueue int
	// PID in the syslog lines; 0 is this process's.
	PID int
	// Now stamps the syslog lines; nil is time.Now.
	Now func() time.Time
}

// DefaultSyslogQueue bounds the lines waiting for syslog.
const DefaultSyslogQueue = 1024

// closeDrain bounds how long Close waits for queued lines to reach syslog.
const closeDrain = 2 * time.Second

// Logger writes catalogue messages to syslog and to stderr. It is safe for
// concurrent use.
//
// Syslog lines go through a bounded queue that one goroutine empties, so
// that no caller (a recovery, a stall kill) ever waits for syslog: a stuck
// syslog costs dropped lines, counted, never time.
type Logger struct {
	slog   *slog.Logger
	syslog *syslogWriter // nil when no syslog socket was given

	queue     chan queued
	flushes   chan chan struct{}
	closed    chan struct{}
	drained   chan struct{}
	closeOnce sync.Once
	// queueDropped counts lines dropped because the queue was full.
	queueDropped atomic.Uint64
	// observer, when set, sees every catalogue message (the event
	// history); it must not block.
	observer atomic.Pointer[func(Message)]
}

// queued is one line waiting for syslog, stamped when it was logged.
type queued struct {
	sev  Severity
	text string
	at   time.Time
}

// NewLogger checks cfg and returns its Logger. Nothing is connected yet: a
// missing syslog socket is not an error (it warns at the first line).
func NewLogger(cfg Config) (*Logger, error) {
	if cfg.Ident == "" {
		return nil, fmt.Errorf("msg: no syslog ident")
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Level == nil {
		cfg.Level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: cfg.Level, ReplaceAttr: guardAttr}
	var h slog.Handler
	switch cfg.Format {
	case "", "text":
		h = slog.NewTextHandler(cfg.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(cfg.Stderr, opts)
	default:
		return nil, fmt.Errorf("unknown log format %q (want text or json)", cfg.Format)
	}
	l := &Logger{slog: slog.New(h)}
	if cfg.SyslogSocket != "" {
		if cfg.SyslogTimeout <= 0 {
			cfg.SyslogTimeout = 200 * time.Millisecond
		}
		if cfg.PID == 0 {
			cfg.PID = os.Getpid()
		}
		if cfg.Now == nil {
			cfg.Now = time.Now
		}
		if cfg.Facility == 0 {
			cfg.Facility = Daemon
		}
		l.syslog = &syslogWriter{
			path:     cfg.SyslogSocket,
			ident:    cfg.Ident,
			pid:      cfg.PID,
			facility: cfg.Facility,
			timeout:  cfg.SyslogTimeout,
			now:      cfg.Now,
			diag:     l.slog,
		}
		if cfg.SyslogQueue <= 0 {
			cfg.SyslogQueue = DefaultSyslogQueue
		}
		l.queue = make(chan queued, cfg.SyslogQueue)
		l.flushes = make(chan chan struct{})
		l.closed = make(chan struct{})
		l.drained = make(chan struct{})
		go l.deliver()
	}
	return l, nil
}

// guardAttr is the stderr lines' last guard (quote.Line): a message or a
// field that still holds a raw control byte or invalid UTF-8 is quoted
// whole. Fields made of outside text are quoted where they are made; this
// catches what comes wrapped in an error.
func guardAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; {
	case v.Kind() == slog.KindString:
		if s := v.String(); !quote.Printable(s) {
			a.Value = slog.StringValue(quote.String(s))
		}
	case v.Kind() == slog.KindAny:
		if err, ok := v.Any().(error); ok && !quote.Printable(err.Error()) {
			a.Value = slog.StringValue(quote.String(err.Error()))
		}
	}
	return a
}

// deliver sends the queued lines to syslog until Close.
func (l *Logger) deliver() {
	defer close(l.drained)
	for {
		select {
		case q := <-l.queue:
			l.syslog.write(q.sev, q.text, q.at)
		case done := <-l.flushes:
			l.drain(time.Time{})
			close(done)
		case <-l.closed:
			l.drain(time.Now().Add(closeDrain))
			return
		}
	}
}

// drain sends what is queued now; past deadline (if set) the rest is
// dropped and counted.
func (l *Logger) drain(deadline time.Time) {
	for {
		select {
		case q := <-l.queue:
			if !deadline.IsZero() && time.Now().After(deadline) {
				l.syslog.dropUndelivered()
				continue
			}
			l.syslog.write(q.sev, q.text, q.at)
		default:
			return
		}
	}
}

// Log writes m to stderr as a slog line, then its exact text to syslog.
func (l *Logger) Log(m Message) {
	l.slog.LogAttrs(context.Background(), m.Level, m.Text, m.Attrs...)
	l.Syslog(SeverityOf(m.Level), m.Text)
	if o := l.observer.Load(); o != nil {
		(*o)(m)
	}
}

// Observe hands every catalogue message logged from now on to o as well
// (pcheck's event history); o must not block. nil stops it.
func (l *Logger) Observe(o func(Message)) {
	if o == nil {
		l.observer.Store(nil)
		return
	}
	l.observer.Store(&o)
}

// Syslog queues one line for syslog alone (a diagnostic that stderr already
// has in its own words). It never blocks: a full queue drops the line.
func (l *Logger) Syslog(sev Severity, text string) {
	if l.syslog == nil {
		return
	}
	select {
	case <-l.closed:
		return
	default:
	}
	select {
	case l.queue <- queued{sev: sev, text: text, at: l.syslog.now()}:
	default:
		if l.queueDropped.Add(1) == 1 {
			l.slog.Warn("syslog queue full; dropping lines (they still go to stderr)", "socket", l.syslog.path, "queue", cap(l.queue))
		}
	}
}

// Flush waits until the lines queued so far were sent to syslog (or
// dropped). For tests and for a padmin about to exit.
func (l *Logger) Flush() {
	if l.syslog == nil {
		return
	}
	done := make(chan struct{})
	select {
	case l.flushes <- done:
		<-done
	case <-l.drained:
	}
}

// Slog is the stderr logger for everything outside the catalogue. Those
// lines do not go to syslog: syslog carries only the catalogue's stable
// texts that log watchers match, and under systemd stderr reaches the
// journal anyway.
func (l *Logger) Slog() *slog.Logger { return l.slog }

// SyslogDropped counts the lines syslog never got: socket missing or full,
// or the queue full.
func (l *Logger) SyslogDropped() uint64 {
	if l.syslog == nil {
		return 0
	}
	return l.syslog.droppedTotal() + l.queueDropped.Load()
}

// Close sends what is queued (for at most a couple of seconds) and
// releases the syslog connection. Lines logged after Close reach stderr
// only.
func (l *Logger) Close() error {
	if l.syslog == nil {
		return nil
	}
	l.closeOnce.Do(func() { close(l.closed) })
	<-l.drained
	return l.syslog.close()
}
