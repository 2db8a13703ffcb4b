// SPDX-License-Identifier: Apache-2.0

package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
)

// streams serves /events: Server-Sent Events, one JSON events.Event per
// event, its id the event's Seq.
//
//	GET /events                 new events only
//	GET /events?after=SEQ       the kept events after SEQ first (the page
//	                            passes the newest it shows)
//	Last-Event-ID: SEQ          the same, as a reconnecting EventSource sends
//	?service=NAME               that service's events only
//
// A reader that falls behind loses events in the hub, never slowing
// pcheck; its stream is then ended, and the browser reconnects with the
// last id it got, resuming from the history without a gap.
type streams struct {
	hub       *events.Hub
	heartbeat time.Duration
	places    chan struct{} // one per stream served now
	closed    chan struct{} // closed by close: every stream ends
	closeOnce sync.Once
	open      atomic.Int64 // subscriptions held now
}

// subscribers is how many hub subscriptions the streams hold now.
func (s *streams) subscribers() int64 { return s.open.Load() }

func (s *streams) close() { s.closeOnce.Do(func() { close(s.closed) }) }

// streamBuffer is how many events a stream holds for a slow reader.
const streamBuffer = 64

// writeWindow is how long one write to a stream may take: the listener's
// write timeout is meant for whole answers, and a stream lasts; each write
// gets its own window instead, and a reader that takes no more is dropped.
const writeWindow = 30 * time.Second

// retryMillis is how soon a browser reconnects when a stream ends.
const retryMillis = 1000

func (s *streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, resume, err := resumePoint(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.hub == nil {
		http.Error(w, "no event history here", http.StatusNotFound)
		return
	}
	select {
	case <-s.closed:
		http.Error(w, "pcheck is stopping", http.StatusServiceUnavailable)
		return
	default:
	}
	select {
	case s.places <- struct{}{}:
		defer func() { <-s.places }()
	default:
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many event streams open", http.StatusServiceUnavailable)
		return
	}
	// The listener's read timeout ends with the request's header (net/http
	// reads on in the background, to see a gone client); its write timeout
	// is replaced by one window per write (see send).
	rc := http.NewResponseController(w)
	if resume && after > s.newest() {
		// An id from an earlier history (pcheck restarted without its
		// kept history, so the numbers began again): all it keeps is new.
		after = 0
	}
	sub, backlog := s.hub.Subscribe(events.Filter{Service: r.URL.Query().Get("service"), AfterSeq: after}, streamBuffer)
	s.open.Add(1)
	defer func() {
		sub.Close()
		s.open.Add(-1)
	}()
	if !resume {
		backlog = nil
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if r.Method == http.MethodHead {
		return
	}
	s.stream(w, r, rc, sub, backlog)
}

// stream writes the backlog, then every event as it comes, until the
// client goes, a write fails, or the subscription lost events.
func (s *streams) stream(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, sub *events.Subscription, backlog []events.Event) {
	send := func(format string, args ...any) bool {
		if rc.SetWriteDeadline(time.Now().Add(writeWindow)) != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: %d\n\n", retryMillis) {
		return
	}
	for _, e := range backlog {
		if !sendEvent(send, e) {
			return
		}
	}
	beat := time.NewTicker(s.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case <-beat.C:
			if !send(": still here\n\n") {
				return
			}
		case e, ok := <-sub.C():
			if !ok || !sendEvent(send, e) || sub.Dropped() > 0 {
				return // on a loss the browser resumes after e
			}
		}
	}
}

// sendEvent frames e: its id, and its JSON on one data line (JSON has no
// raw newline, so no text of it can end the frame).
func sendEvent(send func(string, ...any) bool, e events.Event) bool {
	data, err := json.Marshal(e)
	if err != nil {
		return true // no event of the hub fails to marshal; skip rather than end
	}
	return send("id: %d\ndata: %s\n\n", e.Seq, data)
}

// newest is the number of the newest event kept (0: none).
func (s *streams) newest() uint64 {
	kept := s.hub.Recent(events.Filter{})
	if len(kept) == 0 {
		return 0
	}
	return kept[len(kept)-1].Seq
}

// resumePoint is where a stream starts: after the Last-Event-ID a
// reconnecting browser sends, else after ?after=, else (resume false) at
// the next new event.
func resumePoint(r *http.Request) (after uint64, resume bool, err error) {
	v, from := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if v == "" {
		v, from = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %q is not an event number", from, v)
	}
	return n, true, nil
}
