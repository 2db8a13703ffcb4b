// SPDX-License-Identifier: Apache-2.0

// Package msg is pwatch's catalogue of log messages and their output. Four
// texts are the WebEdition guide's section 4.2, word for word, because
// existing log watchers match them: WebStall, SocketStall, Killed and
// KillFailed. The others (Down, Ended, TryRestart, Up, SetPidFail,
// RetryOver, RebootThresholdReached, CommandExecute) are pwatch's own
// wording, as docs/behaviour.md says: the guide refers to the base
// product's lines but does not print them. Each goes to syslog exactly as
// written and to stderr as a structured slog line whose fields (service,
// pid, reason, exit details) say the same for machines.
package msg

import (
	"fmt"
	"log/slog"
)

// Message is one catalogue entry, ready to log.
type Message struct {
	// Text is the exact syslog text.
	Text string
	// Level is the slog level; the syslog severity follows it.
	Level slog.Level
	// Attrs are the structured fields of the stderr line.
	Attrs []slog.Attr
}

func (m Message) String() string { return m.Text }

// Field names shared by every message, so that stderr lines can be queried
// the same way whichever message they carry.
const (
	KeyEvent       = "event"
	KeyService     = "service"
	KeyPID         = "pid"
	KeyReason      = "reason"
	KeyAttempt     = "attempt"
	KeyAction      = "action"
	KeyPort        = "port"
	KeyCommand     = "command"
	KeyError       = "error"
	KeyExitStatus  = "exit_status"
	KeySignal      = "signal"
	KeySignalName  = "signal_name"
	KeyCoreDumped  = "core_dumped"
	KeyStatusKnown = "status_known"
	KeyCause       = "cause"
	KeyOOM         = "oom"
	KeyMemcg       = "memcg"
	KeyRSSKiB      = "rss_kib"
	KeySenderPID   = "sender_pid"
	KeySenderComm  = "sender_comm"
	KeySenderUID   = "sender_uid"
)

func message(level slog.Level, event, text string, attrs ...slog.Attr) Message {
	return Message{
		Text:  text,
		Level: level,
		Attrs: append([]slog.Attr{slog.String(KeyEvent, event)}, attrs...),
	}
}

func withError(attrs []slog.Attr, err error) []slog.Attr {
	if err != nil {
		attrs = append(attrs, slog.String(KeyError, err.Error()))
	}
	return attrs
}

// Down: a top-level process of the service exited or became a zombie.
func Down(name string, pid int) Message {
	return message(slog.LevelWarn, "down",
		fmt.Sprintf("Process ['%s',pid=%d] Down", name, pid),
		slog.String(KeyService, name), slog.Int(KeyPID, pid))
}

// Ended says how and why the process that went Down ended, naming the
// service and the pid (two may die at once); it is logged on its own line
// right after Down: "Process ['NAME',pid=PID] killed by signal 9
// (SIGKILL), sent by pid 4321 (kill, uid 0)".
func Ended(name string, pid int, e Ending) Message {
	attrs := []slog.Attr{slog.String(KeyService, name), slog.Int(KeyPID, pid)}
	return message(slog.LevelWarn, "ended", fmt.Sprintf("Process ['%s',pid=%d] %s", name, pid, e), append(attrs, e.attrs()...)...)
}

// TryRestart: the restart script is about to run. reason is down, stall,
// socket or start (as PWATCH_REASON); attempt counts from 1 within grace.
func TryRestart(name, reason string, attempt int) Message {
	return message(slog.LevelInfo, "restart",
		fmt.Sprintf("Try to restart ('%s')", name),
		slog.String(KeyService, name), slog.String(KeyReason, reason), slog.Int(KeyAttempt, attempt))
}

// Up: the service's process is found again after a restart.
func Up(name string, pid int) Message {
	return message(slog.LevelInfo, "up",
		fmt.Sprintf("('%s',pid=%d) Up", name, pid),
		slog.String(KeyService, name), slog.Int(KeyPID, pid))
}

// SetPidFail: a restart attempt did not bring the service back; cause (the
// script's failure or timeout, may be nil) goes to the stderr line only.
func SetPidFail(name string, cause error) Message {
	return message(slog.LevelError, "set_pid_fail",
		fmt.Sprintf("Set pid fail ('%s')", name),
		withError([]slog.Attr{slog.String(KeyService, name)}, cause)...)
}

// RetryOver: retry_count attempts failed within grace; action is the
// retry_over_action taken (continue, shutdown, exit, reboot).
func RetryOver(name, action string) Message {
	return message(slog.LevelError, "retry_over",
		fmt.Sprintf("Retry over ('%s') action=%s", name, action),
		slog.String(KeyService, name), slog.String(KeyAction, action))
}

// WebStall: an http or https check found the service stalled.
func WebStall(name string, pid, port int) Message {
	return message(slog.LevelError, "stall",
		fmt.Sprintf("Find Web Server Stall: pid = %d : port = %d", pid, port),
		slog.String(KeyService, name), slog.Int(KeyPID, pid), slog.Int(KeyPort, port),
		slog.String(KeyReason, "stall"))
}

// SocketStall: a tcp (or listen_check) check found the service stalled.
func SocketStall(name string, pid, port int) Message {
	return message(slog.LevelError, "stall",
		fmt.Sprintf("Find Socket Service Stall: pid = %d : port = %d", pid, port),
		slog.String(KeyService, name), slog.Int(KeyPID, pid), slog.Int(KeyPort, port),
		slog.String(KeyReason, "socket"))
}

// Killed: the stalled process was killed.
func Killed(name string, pid int) Message {
	return message(slog.LevelWarn, "killed",
		fmt.Sprintf("Killed Process: pid= %d", pid),
		slog.String(KeyService, name), slog.Int(KeyPID, pid))
}

// KillFailed: the stalled process could not be killed.
func KillFailed(name string, pid int, cause error) Message {
	return message(slog.LevelError, "kill_failed",
		fmt.Sprintf("Can not killed Process: pid= %d", pid),
		withError([]slog.Attr{slog.String(KeyService, name), slog.Int(KeyPID, pid)}, cause)...)
}

// RebootThresholdReached: the reboot guard refused a reboot; pcheck acts as
// retry_over_action continue instead.
func RebootThresholdReached(name string) Message {
	return message(slog.LevelError, "reboot_threshold",
		fmt.Sprintf("Reboot threshold reached ('%s')", name),
		slog.String(KeyService, name))
}

// padmin commands that log a Command execute. line.
const (
	CommandStop   = "stop"
	CommandStart  = "start"
	CommandReload = "reload"
	// CommandRestart is logged by pcheck, not padmin: the supervisor logs
	// it when it takes the restart on (padmin restart).
	CommandRestart = "restart"
)

// CommandExecute is padmin's line for stop, start and reload, and
// pcheck's for restart. name is the
// pfile's service name; a reload of every pfile passes "" and logs
// pfile=” (the guide fixes no text for it, and an invented token could
// collide with a service's name).
func CommandExecute(command, name string) Message {
	return message(slog.LevelInfo, "command",
		fmt.Sprintf("Command execute. [%s] pfile='%s'", command, name),
		slog.String(KeyCommand, command), slog.String(KeyService, name))
}
