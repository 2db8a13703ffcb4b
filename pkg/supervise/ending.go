// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"strconv"
	"time"

	"github.com/pwatch/pwatch/internal/quote"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/msg"
)

// Endings: how a top-level process ended and why, as logged, counted and
// told to the scripts.

// killedBy names, for the ending line, what in pcheck killed a service
// for each recovery reason that is pcheck's own kill.
var killedBy = map[string]string{
	ReasonStall: "stall check", ReasonSocket: "stall check",
	ReasonOperator: "padmin restart", ReasonLimit: "limit",
}

// endingOf is how and why the process of ev ended; reason is the
// recovery's: a stall check's kill is pcheck's own.
func endingOf(ev exitwatch.Event, reason string) msg.Ending {
	e := msg.Ending{Known: ev.Known, ExitStatus: ev.ExitStatus, Signal: ev.Signal, CoreDumped: ev.CoreDumped}
	switch {
	case ev.OOM != nil:
		e.OOM, e.Memcg, e.RSSKiB = true, ev.OOM.Memcg, ev.OOM.RSSKiB
	case ev.Known && ev.Signal != 0 && killedBy[reason] != "":
		e.ByPcheck = killedBy[reason]
	case ev.Sender != nil:
		e.SenderPID, e.SenderComm, e.SenderUID = ev.Sender.PID, ev.Sender.Comm, ev.Sender.UID
	}
	return e
}

// recordDeath keeps the last death's cause for padmin and the scripts, and
// counts it.
func (s *Service) recordDeath(e msg.Ending, req *RestartRequest) {
	s.mu.Lock()
	s.lastDeath, s.lastDeathAt, s.lastDeathFor = &e, time.Now(), req
	s.mu.Unlock()
	s.d.Observer.Death(s.cfg.Name, e.Cause())
}

// causeEnv tells a script why the service last died (nothing for a start).
func causeEnv(e *msg.Ending) []string {
	if e == nil {
		return nil
	}
	env := []string{"PWATCH_CAUSE=" + e.Cause()}
	if !e.Known {
		return env
	}
	if e.Signal == 0 && !e.OOM {
		return append(env, "PWATCH_EXIT_STATUS="+strconv.Itoa(e.ExitStatus))
	}
	env = append(env, "PWATCH_SIGNAL="+strconv.Itoa(e.Signal))
	if e.SenderPID != 0 && e.ByPcheck == "" {
		env = append(env, "PWATCH_SENDER_PID="+strconv.Itoa(e.SenderPID), "PWATCH_SENDER_COMM="+quote.String(e.SenderComm))
	}
	return env
}
