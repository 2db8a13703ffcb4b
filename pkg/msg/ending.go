package msg

import (
	"fmt"
	"log/slog"
	"syscall"

	"golang.org/x/sys/unix"
)

// Ending is how a process ended, as exitwatch reports it.
type Ending struct {
	// Known is false when the status could not be learnt (a process already
	// reaped by its parent, seen by polling /proc).
	Known      bool
	ExitStatus int  // exit(2) status when Signal == 0
	Signal     int  // the signal that killed it, 0 if it exited
	CoreDumped bool // the signal dumped core
}

// Exited is the Ending of a process that called exit(status).
func Exited(status int) Ending { return Ending{Known: true, ExitStatus: status} }

// KilledBy is the Ending of a process killed by sig.
func KilledBy(sig int, coreDumped bool) Ending {
	return Ending{Known: true, Signal: sig, CoreDumped: coreDumped}
}

// String is the ending line: "exited with status 3", "killed by signal 9
// (SIGKILL)", "killed by signal 11 (SIGSEGV), core dumped", or "exited
// (status unknown)".
func (e Ending) String() string {
	switch {
	case !e.Known:
		return "exited (status unknown)"
	case e.Signal == 0:
		return fmt.Sprintf("exited with status %d", e.ExitStatus)
	}
	s := fmt.Sprintf("killed by signal %d", e.Signal)
	if name := signalName(e.Signal); name != "" {
		s += " (" + name + ")"
	}
	if e.CoreDumped {
		s += ", core dumped"
	}
	return s
}

func (e Ending) attrs() []slog.Attr {
	switch {
	case !e.Known:
		return []slog.Attr{slog.Bool(KeyStatusKnown, false)}
	case e.Signal == 0:
		return []slog.Attr{slog.Int(KeyExitStatus, e.ExitStatus)}
	}
	attrs := []slog.Attr{slog.Int(KeySignal, e.Signal)}
	if name := signalName(e.Signal); name != "" {
		attrs = append(attrs, slog.String(KeySignalName, name))
	}
	return append(attrs, slog.Bool(KeyCoreDumped, e.CoreDumped))
}

// signalName is "SIGKILL" for 9; "" for numbers without a name (real-time
// signals, garbage).
func signalName(sig int) string {
	if sig <= 0 || sig > 255 {
		return ""
	}
	return unix.SignalName(syscall.Signal(sig))
}
