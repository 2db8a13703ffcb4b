package msg

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
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
	// PID in the syslog lines; 0 is this process's.
	PID int
	// Now stamps the syslog lines; nil is time.Now.
	Now func() time.Time
}

// Logger writes catalogue messages to syslog and to stderr. It is safe for
// concurrent use.
type Logger struct {
	slog   *slog.Logger
	syslog *syslogWriter // nil when no syslog socket was given
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
	opts := &slog.HandlerOptions{Level: cfg.Level}
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
	}
	return l, nil
}

// Log writes m to stderr as a slog line, then its exact text to syslog.
func (l *Logger) Log(m Message) {
	l.slog.LogAttrs(context.Background(), m.Level, m.Text, m.Attrs...)
	if l.syslog != nil {
		l.syslog.write(SeverityOf(m.Level), m.Text)
	}
}

// Slog is the stderr logger for everything outside the catalogue. Those
// lines do not go to syslog: syslog carries only the catalogue's stable
// texts that log watchers match, and under systemd stderr reaches the
// journal anyway.
func (l *Logger) Slog() *slog.Logger { return l.slog }

// SyslogDropped counts the lines syslog never got (socket missing or full).
func (l *Logger) SyslogDropped() uint64 {
	if l.syslog == nil {
		return 0
	}
	return l.syslog.droppedTotal()
}

// Close releases the syslog connection; a later Log connects again.
func (l *Logger) Close() error {
	if l.syslog == nil {
		return nil
	}
	return l.syslog.close()
}
