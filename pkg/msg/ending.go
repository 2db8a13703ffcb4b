// SPDX-License-Identifier: Apache-2.0

package msg

import (
	"fmt"
	"log/slog"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/quote"
)

// Ending is how a process ended, and why, as exitwatch reports it.
type Ending struct {
	// Known is false when the status could not be learnt (a process already
	// reaped by its parent, seen by polling /proc).
	Known      bool
	ExitStatus int  // exit(2) status when Signal == 0
	Signal     int  // the signal that killed it, 0 if it exited
	CoreDumped bool // the signal dumped core
	// OOM: the OOM killer chose it; Memcg and RSSKiB as far as known.
	OOM    bool
	Memcg  string
	RSSKiB int64
	// ByPcheck names what in pcheck killed it ("stall check"); else Sender
	// is who sent Signal, when known (SenderPID 0: not known). Memcg and
	// SenderComm are raw, as the kernel gave them: their owners chose them,
	// so every text made of them quotes them (internal/quote).
	ByPcheck   string
	SenderPID  int
	SenderComm string
	SenderUID  int
}

// Cause words, as PWATCH_CAUSE and the metrics say them.
const (
	CauseExit    = "exit"
	CauseSignal  = "signal"
	CauseOOM     = "oom"
	CausePcheck  = "pcheck"
	CauseUnknown = "unknown"
)

// Cause is the one word for why it ended.
func (e Ending) Cause() string {
	switch {
	case !e.Known:
		return CauseUnknown
	case e.OOM:
		return CauseOOM
	case e.ByPcheck != "":
		return CausePcheck
	case e.Signal != 0:
		return CauseSignal
	}
	return CauseExit
}

// Exited is the Ending of a process that called exit(status).
func Exited(status int) Ending { return Ending{Known: true, ExitStatus: status} }

// KilledBy is the Ending of a process killed by sig.
func KilledBy(sig int, coreDumped bool) Ending {
	return Ending{Known: true, Signal: sig, CoreDumped: coreDumped}
}

// String is the cause: "exited with status 3", "killed by signal 9
// (SIGKILL), sent by pid 4321 (kill, uid 0)", "killed by signal 11
// (SIGSEGV), core dumped", "killed by the OOM killer (memory cgroup /web,
// rss 524288 kB)", "killed by signal 9 (SIGKILL), sent by pcheck (stall
// check)", or "exited (status unknown)".
func (e Ending) String() string {
	switch {
	case !e.Known:
		return "exited (status unknown)"
	case e.OOM:
		return "killed by the OOM killer" + e.oomDetails()
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
	switch {
	case e.ByPcheck != "":
		s += ", sent by pcheck (" + e.ByPcheck + ")"
	case e.SenderPID != 0:
		s += fmt.Sprintf(", sent by pid %d (%s, uid %d)", e.SenderPID, quote.String(e.SenderComm), e.SenderUID)
	}
	return s
}

func (e Ending) oomDetails() string {
	var parts []string
	if e.Memcg != "" {
		parts = append(parts, "memory cgroup "+quote.String(e.Memcg))
	}
	if e.RSSKiB > 0 {
		parts = append(parts, fmt.Sprintf("rss %d kB", e.RSSKiB))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (e Ending) attrs() []slog.Attr {
	attrs := []slog.Attr{slog.String(KeyCause, e.Cause())}
	switch {
	case !e.Known:
		return append(attrs, slog.Bool(KeyStatusKnown, false))
	case e.Signal == 0 && !e.OOM:
		return append(attrs, slog.Int(KeyExitStatus, e.ExitStatus))
	}
	attrs = append(attrs, slog.Int(KeySignal, e.Signal))
	if name := signalName(e.Signal); name != "" {
		attrs = append(attrs, slog.String(KeySignalName, name))
	}
	attrs = append(attrs, slog.Bool(KeyCoreDumped, e.CoreDumped), slog.Bool(KeyOOM, e.OOM))
	if e.OOM && e.Memcg != "" {
		attrs = append(attrs, slog.String(KeyMemcg, quote.String(e.Memcg)))
	}
	if e.OOM && e.RSSKiB > 0 {
		attrs = append(attrs, slog.Int64(KeyRSSKiB, e.RSSKiB))
	}
	if e.SenderPID != 0 && e.ByPcheck == "" {
		attrs = append(attrs, slog.Int(KeySenderPID, e.SenderPID), slog.String(KeySenderComm, quote.String(e.SenderComm)), slog.Int(KeySenderUID, e.SenderUID))
	}
	return attrs
}

// signalName is "SIGKILL" for 9; "" for numbers without a name (real-time
// signals, garbage).
func signalName(sig int) string {
	if sig <= 0 || sig > 255 {
		return ""
	}
	return unix.SignalName(syscall.Signal(sig))
}
