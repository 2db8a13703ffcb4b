// SPDX-License-Identifier: Apache-2.0

// Package control is padmin's way into a running pcheck: one JSON request
// and one JSON response per connection over a Unix stream socket that only
// root may use. The server side lives in pcheck (which implements Handler),
// the client side in padmin.
package control

import (
	"encoding/json"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
)

// The commands a Request carries.
const (
	CommandStatus      = "status"
	CommandRules       = "rules"
	CommandStop        = "stop"
	CommandStart       = "start"
	CommandReload      = "reload"
	CommandRebootCount = "reboot-count"
)

// Request is what padmin asks.
type Request struct {
	Command string `json:"command"`
	// Name is the service (pfile) the command is about; "" is all of them
	// (status, rules, reload).
	Name string `json:"name,omitempty"`
	// Reset clears the reboot counter (reboot-count only).
	Reset bool `json:"reset,omitempty"`
	// Since, Follow and Buffer are those of events (events.go): Name is
	// then the service whose events are wanted ("": all).
	Since  *time.Time `json:"since,omitempty"`
	Follow bool       `json:"follow,omitempty"`
	Buffer int        `json:"buffer,omitempty"`
}

// Response is pcheck's answer; which fields are set depends on the command.
type Response struct {
	// Error is why the command failed as a whole.
	Error string `json:"error,omitempty"`
	// Services answers status.
	Services []ServiceStatus `json:"services,omitempty"`
	// Rules answers rules: the effective rules as padmin check --json
	// prints them (their shape belongs to the pfile package).
	Rules json.RawMessage `json:"rules,omitempty"`
	// ReloadErrors lists every error of a refused reload: any error refuses
	// the whole reload, and the running rules stay.
	ReloadErrors []string `json:"reload_errors,omitempty"`
	// Reboots answers reboot-count.
	Reboots *RebootCount `json:"reboots,omitempty"`
	// Events answers events, oldest first. In a stream (Following),
	// Dropped counts the events pcheck could not queue for this reader
	// so far.
	Events    []events.Event `json:"events,omitempty"`
	Dropped   uint64         `json:"dropped,omitempty"`
	Following bool           `json:"following,omitempty"`
}

// ServiceStatus is one line of padmin status.
type ServiceStatus struct {
	Name string `json:"name"`
	// State is Up, Down, Restarting, Stalled, Paused or RetryOver.
	State string `json:"state"`
	// PIDs are the service's top-level processes.
	PIDs []int `json:"pids"`
	// UptimeSeconds is how long the service has been Up; 0 when it is not.
	UptimeSeconds int64 `json:"uptime"`
	// Restarts counts the restart attempts within the grace window.
	Restarts int `json:"restarts"`
	// AttemptsLeft are the restart attempts retry_count still allows
	// within grace.
	AttemptsLeft int `json:"attempts_left"`
	// NextAttemptIn is the seconds until the next restart attempt, while a
	// pause between attempts is under way; RearmIn those until a
	// retried-over service is tried again (rearm_after). null: none due.
	NextAttemptIn *float64 `json:"next_attempt_in"`
	RearmIn       *float64 `json:"rearm_in"`
	// Step is the step of a recovery under way ("script running",
	// "pausing 4.2s"); empty at rest.
	Step      string `json:"step,omitempty"`
	LastEvent *Event `json:"last_event,omitempty"`
	// LastDeath is why a top-level process last died.
	LastDeath *Death `json:"last_death,omitempty"`
	// Checks are the service's stall-check blocks.
	Checks []CheckStatus `json:"checks,omitempty"`
	// Usage is the last sample of the service's tree; only services with
	// limits are sampled (null for the others).
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is one sample of a service's tree (the top-level processes and
// every descendant). A value not sampled (no such limit, or the CPU of a
// first sample) is null.
type Usage struct {
	Time      time.Time `json:"time"`
	Processes int       `json:"processes"`
	// MemoryBytes is the sum of the processes' RSS, or of their PSS
	// (MemoryPSS) when the RSS passes 90 % of memory_max.
	MemoryBytes *uint64 `json:"memory_bytes"`
	MemoryPSS   bool    `json:"memory_pss"`
	// CPUPercent is over the last sample period, of one core.
	CPUPercent *float64 `json:"cpu_percent"`
	CPUSeconds float64  `json:"cpu_seconds"`
	FDs        *int     `json:"fds"`
	Threads    int      `json:"threads"`
}

// Death is why a process died: the cause in one word (exit, signal, oom,
// pcheck, unknown), the ending line's text, and its details.
type Death struct {
	Time       time.Time `json:"time"`
	Cause      string    `json:"cause"`
	Text       string    `json:"text"`
	ExitStatus *int      `json:"exit_status,omitempty"`
	Signal     int       `json:"signal,omitempty"`
	CoreDumped bool      `json:"core_dumped,omitempty"`
	OOM        bool      `json:"oom,omitempty"`
	Memcg      string    `json:"memcg,omitempty"`
	RSSKiB     int64     `json:"rss_kib,omitempty"`
	SenderPID  int       `json:"sender_pid,omitempty"`
	SenderComm string    `json:"sender_comm,omitempty"`
	SenderUID  *int      `json:"sender_uid,omitempty"`
}

// CheckStatus is one stall-check block as the daemon last saw it.
type CheckStatus struct {
	Block string `json:"block"`
	Kind  string `json:"check"`
	Port  int    `json:"port"`
	// OK: the last round succeeded; false before the first round too.
	OK bool `json:"ok"`
	// State is starting (Up, no probe has succeeded yet), ok, failing
	// (see FailingSince), stopped (error 1 found a stall) or idle (the
	// service is not Up).
	State string `json:"state"`
	// FailingSince is when the failures of a failing (or starting) block
	// began; nil when its last round succeeded.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// LastProbeSeconds is how long the last probe took.
	LastProbeSeconds float64 `json:"last_probe_seconds"`
	// NotCountedSeconds is the failure time not counted towards the
	// duration because the server or pcheck was starved of CPU.
	NotCountedSeconds float64 `json:"not_counted,omitempty"`
	// Stopped: PS_EXEC error 1 and a stall was found, or a stall kill
	// failed; the block checks no more (until padmin start).
	Stopped bool   `json:"stopped"`
	Stalls  uint64 `json:"stalls"`
	// AcceptQueue and Backlog of the service's listener on the port, from
	// the last listen check; -1 when unknown.
	AcceptQueue int `json:"accept_queue"`
	Backlog     int `json:"backlog"`
}

// Event is a service's last logged catalogue message.
type Event struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// RebootCount is the reboot guard's state.
type RebootCount struct {
	// Count is the reboots within the window.
	Count         int   `json:"count"`
	Threshold     int   `json:"threshold"`
	WindowSeconds int64 `json:"window"`
}
