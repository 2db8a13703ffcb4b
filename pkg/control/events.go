// SPDX-License-Identifier: Apache-2.0

package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
)

// The commands of the event history and of padmin restart.
const (
	// CommandEvents lists the kept events; with Request.Follow it is the
	// one streaming request: the kept events, then each new one as it
	// happens, one Response a line, until the client hangs up.
	CommandEvents = "events"
	// CommandRestart restarts an Up service through its recovery
	// (reason operator).
	CommandRestart = "restart"
)

// EventSource is the Handler's event history (padmin events).
type EventSource interface {
	EventHub() *events.Hub
}

// Restarter restarts an Up service through its usual recovery path, with
// reason operator, not counted as a failed attempt; it answers once the
// supervisor has taken the restart on, and refuses (naming the state) a
// service that is not Up.
type Restarter interface {
	Restart(ctx context.Context, name string) error
}

// Follow streams' bounds. A follower gets DefaultFollowBuffer events
// queued for it (Request.Buffer asks for 1 to MaxFollowBuffer) beside what
// the socket holds; past that its events are dropped and counted
// (Response.Dropped), never waited for. One that reads nothing for
// followWriteTimeout is hung up on.
const (
	DefaultFollowBuffer = 256
	MaxFollowBuffer     = 4096
	followWriteTimeout  = 30 * time.Second
	// followSocketBuffer is a follower's kernel send buffer: small, so
	// that a reader that falls behind is soon counted in Dropped rather
	// than silently pinning kernel memory (a few dozen events fit).
	followSocketBuffer = 32 << 10
	// followBatch bounds the events one Response of a stream carries.
	followBatch = 64
)

func filterOf(req Request) events.Filter {
	f := events.Filter{Service: req.Name}
	if req.Since != nil {
		f.Since = *req.Since
	}
	return f
}

// dispatchHistory answers the commands of this file; ok is false for a
// command it does not know.
func (s *Server) dispatchHistory(ctx context.Context, req Request) (resp Response, ok bool, err error) {
	switch req.Command {
	case CommandEvents:
		src, has := s.handler.(EventSource)
		if !has {
			return resp, true, errors.New("this pcheck keeps no event history")
		}
		resp.Events = src.EventHub().Recent(filterOf(req))
		if resp.Events == nil {
			resp.Events = []events.Event{} // [] in JSON: an empty history, not a missing answer
		}
		return resp, true, nil
	case CommandRestart:
		r, has := s.handler.(Restarter)
		switch {
		case !has:
			return resp, true, errors.New("this pcheck cannot restart a service")
		case req.Name == "":
			return resp, true, errors.New("restart needs a service name")
		}
		return resp, true, r.Restart(ctx, req.Name)
	}
	return resp, false, nil
}

// follow serves a streaming events request: the kept events that pass the
// filter first (always one Response, empty or not, so the client knows it
// is following), then the new ones as they come. The hub never waits for
// this reader: its subscription drops and counts what does not fit, and
// every Response carries the count so far.
func (s *Server) follow(ctx context.Context, conn *net.UnixConn, req Request, peerPID int32) {
	src, ok := s.handler.(EventSource)
	if !ok {
		s.reply(conn, Response{Error: "this pcheck keeps no event history"})
		return
	}
	buf := req.Buffer
	if buf <= 0 {
		buf = DefaultFollowBuffer
	}
	buf = min(buf, MaxFollowBuffer)
	conn.SetWriteBuffer(followSocketBuffer)
	sub, backlog := src.EventHub().Subscribe(filterOf(req), buf)
	defer sub.Close()
	// A write blocked on a reader that does not read ends with the
	// client or the server too.
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Now()) })
	defer stop()
	enc := json.NewEncoder(conn)
	send := func(evs []events.Event) error {
		conn.SetWriteDeadline(time.Now().Add(followWriteTimeout))
		return enc.Encode(Response{Events: evs, Dropped: sub.Dropped(), Following: true})
	}
	err := send(backlog)
	for err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case e := <-sub.C():
			err = send(drain(sub.C(), e))
		}
	}
	if n := sub.Dropped(); n > 0 {
		s.log.Warn("an events follower was too slow: events it was not sent", "dropped", n, "peer_pid", peerPID, "ended", err)
	}
}

// drain takes first and what else is already queued, up to followBatch.
func drain(c <-chan events.Event, first events.Event) []events.Event {
	evs := []events.Event{first}
	for len(evs) < followBatch {
		select {
		case e := <-c:
			evs = append(evs, e)
		default:
			return evs
		}
	}
	return evs
}

// EventQuery is what padmin events asks for.
type EventQuery struct {
	// Service keeps one service's events ("": all).
	Service string
	// Since keeps the events logged at or after it (zero: all kept).
	Since time.Time
	// Buffer is the events pcheck may queue for a follower (0: default).
	Buffer int
}

func (q EventQuery) request(follow bool) Request {
	r := Request{Command: CommandEvents, Name: q.Service, Follow: follow, Buffer: q.Buffer}
	if !q.Since.IsZero() {
		r.Since = &q.Since
	}
	return r
}

// Events lists the kept events that pass q, oldest first.
func (c Client) Events(ctx context.Context, q EventQuery) ([]events.Event, error) {
	resp, err := c.call(ctx, q.request(false))
	return resp.Events, err
}

// Restart restarts name through its recovery, with reason operator.
func (c Client) Restart(ctx context.Context, name string) error {
	_, err := c.call(ctx, Request{Command: CommandRestart, Name: name})
	return err
}

// Follow lists the kept events that pass q, then each new one as pcheck
// logs it, handing each batch to see with the count of events pcheck
// dropped for this reader so far. It returns when ctx ends (nil), when
// see fails (its error), or when pcheck hangs up.
func (c Client) Follow(ctx context.Context, q EventQuery, see func(evs []events.Event, dropped uint64) error) error {
	conn, err := dial(ctx, c.path())
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(q.request(true)); err != nil {
		return callError(ctx, c.path(), err)
	}
	dec := json.NewDecoder(conn)
	for first := true; ; first = false {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return callError(ctx, c.path(), fmt.Errorf("the event stream ended: %w", err))
		}
		switch {
		case resp.Error != "":
			return errors.New(resp.Error)
		case first && !resp.Following:
			return errors.New("pcheck does not stream events (an older pcheck?)")
		}
		if err := see(resp.Events, resp.Dropped); err != nil {
			return err
		}
	}
}
