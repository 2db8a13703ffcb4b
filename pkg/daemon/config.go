// SPDX-License-Identifier: Apache-2.0

// Package daemon wires pcheck: it loads the pfiles, opens one death watch
// for the host, runs one supervisor per service, routes the kernel's events
// to them, and answers padmin on the control socket.
package daemon

import "time"

// Config is pcheck run's flags.
type Config struct {
	// Paths are the pfiles and pfile directories to watch.
	Paths []string
	// Watcher is the death-detection backend: auto, ebpf, netlink, pidfd
	// or proc.
	Watcher string
	// PollInterval is the proc backend's period.
	PollInterval time.Duration
	// ControlSocket is where padmin reaches pcheck.
	ControlSocket string
	// StateDir keeps what outlives pcheck (the reboot counter, the
	// services stopped or retried over).
	StateDir string
	// RebootCommand reboots the node; "" is systemctl reboot where systemd
	// runs, else /sbin/reboot.
	RebootCommand string
	// RebootThreshold and RebootWindow bound automatic reboots: at most
	// the threshold within the window.
	RebootThreshold int
	RebootWindow    time.Duration
	// MetricsListen and HealthListen are the addresses of the Prometheus
	// metrics (/metrics) and health (/healthz) endpoints; "" is off.
	MetricsListen, HealthListen string
	// WebListen is the address of the status page (pkg/web); "" is off.
	WebListen string
	// HTTPMaxConns caps each of those listeners' connections (< 1:
	// metrics.DefaultMaxConns); a low RLIMIT_NOFILE lowers it (fds.go).
	HTTPMaxConns int
	// NotifyCommand is run for each event of NotifyEvents (a list, ""
	// the default), at most NotifyBurst per service within NotifyPer (0:
	// 5 and 10 minutes); "" is no notifications (pkg/notify).
	NotifyCommand, NotifyEvents string
	NotifyBurst                 int
	NotifyPer                   time.Duration
	// SkipTrustCheck turns the trust rule's refusals into warnings
	// (pkg/trust): for tests only.
	SkipTrustCheck bool
	// ProcRoot is the proc mount; "" is /proc.
	ProcRoot string
}

// ExitStatus is the error Run returns when pcheck must end with a status
// other than 0 (retry_over_action exit: 3).
type ExitStatus struct {
	Code   int
	Reason string
}

func (e *ExitStatus) Error() string { return e.Reason }
