// SPDX-License-Identifier: Apache-2.0

// Package events keeps pcheck's event history: every catalogue line it logs
// (Down with its cause, a restart, Up, a stall, a kill, retry over, a
// limit, a reboot, a reload, a command) also becomes a structured Event,
// kept in a bounded ring and handed to subscribers (padmin events
// --follow, the status page, notifications). A subscriber that does not
// keep up loses events, counted; it never slows the logger.
package events

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
)

// Event is one thing that happened, as its catalogue line said it.
type Event struct {
	// Seq numbers events in the order pcheck logged them, from 1; it keeps
	// counting across pcheck restarts when the history is kept on disk.
	Seq uint64 `json:"seq"`
	// Time is the wall clock when it was logged.
	Time time.Time `json:"time"`
	// SinceBoot is CLOCK_BOOTTIME then: it orders events of one boot
	// whatever the wall clock did. BootID names the boot.
	SinceBoot time.Duration `json:"since_boot_ns"`
	BootID    string        `json:"boot_id,omitempty"`
	// Event is the catalogue's event name (msg.KeyEvent): "down", "up",
	// "try_restart", ...
	Event   string `json:"event"`
	Service string `json:"service,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Text is the exact syslog text.
	Text string `json:"text"`
	// Fields are the message's other structured fields (reason, attempt,
	// cause, exit_status, signal_name, ...), as text.
	Fields map[string]string `json:"fields,omitempty"`
}

// Stamp is when an event happened, on both clocks.
type Stamp struct {
	Time      time.Time
	SinceBoot time.Duration
	BootID    string
}

// FromMessage turns a catalogue message into an Event (Seq still 0).
func FromMessage(m msg.Message, at Stamp) Event {
	e := Event{Time: at.Time, SinceBoot: at.SinceBoot, BootID: at.BootID, Text: m.Text}
	for _, a := range m.Attrs {
		switch a.Key {
		case msg.KeyEvent:
			e.Event = a.Value.String()
		case msg.KeyService:
			e.Service = a.Value.String()
		case msg.KeyPID:
			if a.Value.Kind() == slog.KindInt64 {
				e.PID = int(a.Value.Int64())
			} else if n, err := strconv.Atoi(a.Value.String()); err == nil {
				e.PID = n
			}
		default:
			if e.Fields == nil {
				e.Fields = make(map[string]string, len(m.Attrs))
			}
			e.Fields[a.Key] = a.Value.String()
		}
	}
	return e
}

// Filter selects events; its zero value selects all.
type Filter struct {
	// Service, when set, keeps that service's events only.
	Service string
	// Since, when set, keeps events logged at or after it (wall clock).
	Since time.Time
	// AfterSeq keeps events with a greater Seq (a reader resuming).
	AfterSeq uint64
}

// Match says whether e passes f.
func (f Filter) Match(e Event) bool {
	if f.Service != "" && e.Service != f.Service {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	return e.Seq > f.AfterSeq
}
