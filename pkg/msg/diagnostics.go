// SPDX-License-Identifier: Apache-2.0

package msg

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Diagnostics beside the catalogue: events an operator reading only syslog
// must see, which the guide gives no text for. Their texts are pwatch's
// own, fixed here like the catalogue's (docs/behaviour.md lists them).

// RecoveryTimeout: the service was not back within recovery_timeout, and
// the node is to be rebooted for it.
func RecoveryTimeout(name string, timeout time.Duration) Message {
	return message(slog.LevelError, "recovery_timeout",
		fmt.Sprintf("Recovery timeout ('%s'): not back within %s; rebooting", name, timeout),
		slog.String(KeyService, name), slog.Duration("recovery_timeout", timeout))
}

// DeathWatchStopped: the host's death watch ended on its own; pcheck sees
// no exit any more and ends, for systemd to restart it.
func DeathWatchStopped(backend string) Message {
	return message(slog.LevelError, "death_watch_stopped",
		fmt.Sprintf("Death watch stopped ('%s'): no exit can be seen any more; pcheck ends", backend),
		slog.String("watcher", backend))
}

// Adopted: pcheck found the service running (at its start, a reload or
// padmin start) and watches it without restarting it.
func Adopted(name string, pids []int) Message {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return message(slog.LevelInfo, "adopted",
		fmt.Sprintf("Running service adopted ('%s',pid=%s)", name, strings.Join(s, ",")),
		slog.String(KeyService, name), slog.Any("pids", pids))
}

// OrphansKilled: processes of the service left without their master (it
// died while no pcheck ran) were killed, not adopted, so that the service
// is restarted whole.
func OrphansKilled(name string, pids []int) Message {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return message(slog.LevelWarn, "orphans_killed",
		fmt.Sprintf("Orphaned processes of a dead master killed ('%s',pid=%s)", name, strings.Join(s, ",")),
		slog.String(KeyService, name), slog.Any("pids", pids))
}

// ProgramRefused: a program pcheck was about to run as root for the
// service (its restart or retry-over script, the reboot command) failed
// the trust rule just before exec, and was not run; why names each file.
func ProgramRefused(name, program, why string) Message {
	return message(slog.LevelError, "program_refused",
		fmt.Sprintf("Program refused ('%s',%s): %s; not run", name, program, why),
		slog.String(KeyService, name), slog.String(KeyCommand, program), slog.String(KeyReason, why))
}

// OverLimit: the service's tree exceeded a limit (memory_max, cpu_max,
// fds_max, threads_max) on every sample for held, and is restarted
// gently: "Process ['php',pid=412] over memory_max: 1.21 GiB > 1 GiB for
// 30 s, restarting". value and max are written as the limit is (sizes in
// KiB, MiB or GiB, CPU in percent); pid is the service's first top-level
// process.
func OverLimit(name string, pid int, limit, value, max string, held time.Duration) Message {
	return overLimit(name, pid, limit, value, max, held, ", restarting", "restart")
}

// OverLimitLogged is OverLimit for limit_action log: nothing is restarted.
func OverLimitLogged(name string, pid int, limit, value, max string, held time.Duration) Message {
	return overLimit(name, pid, limit, value, max, held, "", "log")
}

func overLimit(name string, pid int, limit, value, max string, held time.Duration, tail, action string) Message {
	return message(slog.LevelWarn, "limit",
		fmt.Sprintf("Process ['%s',pid=%d] over %s: %s > %s for %d s%s", name, pid, limit, value, max, int64(held.Round(time.Second)/time.Second), tail),
		slog.String(KeyService, name), slog.Int(KeyPID, pid), slog.String("limit", limit),
		slog.String("value", value), slog.String("max", max), slog.Duration("for", held),
		slog.String(KeyAction, action), slog.String(KeyReason, "limit"))
}

// Rebooting: the reboot guard allowed a reboot for the service and the
// reboot command is about to run (logged before it, so that the event
// history keeps it through the reboot).
func Rebooting(name string) Message {
	return message(slog.LevelError, "reboot",
		fmt.Sprintf("Rebooting the node ('%s')", name),
		slog.String(KeyService, name))
}

// Rearmed: rearm_after has passed since a retry over, and the service is
// tried again with its attempts reset.
func Rearmed(name string, rearmAfter time.Duration) Message {
	return message(slog.LevelWarn, "rearm",
		fmt.Sprintf("Retry over re-armed ('%s'): trying again after %s, attempts reset", name, rearmAfter),
		slog.String(KeyService, name), slog.Duration("rearm_after", rearmAfter))
}

// Reloaded: pcheck re-read the pfiles (name's, or all for "") and runs
// their rules now.
func Reloaded(name string) Message {
	return message(slog.LevelInfo, "reload",
		fmt.Sprintf("Rules reloaded (pfile='%s')", name),
		slog.String(KeyService, name))
}

// ReloadRefused: a reload found errors (the log has each) and changed
// nothing.
func ReloadRefused(name string, errors int) Message {
	return message(slog.LevelError, "reload_refused",
		fmt.Sprintf("Reload refused (pfile='%s'): %d errors; the running rules stay", name, errors),
		slog.String(KeyService, name), slog.Int("errors", errors))
}
