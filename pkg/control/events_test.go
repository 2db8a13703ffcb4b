// SPDX-License-Identifier: Apache-2.0

package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// historyHandler is fakeHandler with an event history and restart.
type historyHandler struct {
	fakeHandler
	hub *events.Hub
}

func (h *historyHandler) EventHub() *events.Hub { return h.hub }

func (h *historyHandler) Restart(_ context.Context, name string) error {
	h.record("restart " + name)
	if name != "apache2" {
		return errors.New("not restarted: nginx is Paused, not Up")
	}
	return nil
}

// deadlineForStream bounds reading what a stream has queued.
const deadlineForStream = 20 * time.Second

var hubClock = time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)

func newHistory(t *testing.T) (*historyHandler, control.Client) {
	testpriv.Root(t) // the server answers uid 0 only
	h := &historyHandler{hub: events.NewHub(0, func() events.Stamp {
		hubClock = hubClock.Add(time.Second)
		return events.Stamp{Time: hubClock}
	})}
	path := filepath.Join(t.TempDir(), "pcheck.sock")
	listen(t, path, h, nil)
	return h, control.Client{Path: path}
}

func TestEventsListsTheHistory(t *testing.T) {
	h, c := newHistory(t)
	h.hub.Record(msg.Down("apache2", 10))
	h.hub.Record(msg.Down("nginx", 20))
	up := h.hub.Publish(events.FromMessage(msg.Up("apache2", 11), events.Stamp{Time: hubClock.Add(time.Hour)}))
	all, err := c.Events(ctxT(t), control.EventQuery{})
	if err != nil || len(all) != 3 || all[0].Text != msg.Down("apache2", 10).Text || all[2].Seq != 3 {
		t.Fatalf("all: %+v, %v", all, err)
	}
	one, err := c.Events(ctxT(t), control.EventQuery{Service: "apache2", Since: up.Time})
	if err != nil || len(one) != 1 || one[0].Event != "up" || one[0].PID != 11 {
		t.Fatalf("apache2 since its Up: %+v, %v", one, err)
	}
	none, err := c.Events(ctxT(t), control.EventQuery{Service: "tomcat"})
	if err != nil || len(none) != 0 {
		t.Fatalf("tomcat: %+v, %v", none, err)
	}
}

func TestRestartRequest(t *testing.T) {
	h, c := newHistory(t)
	if err := c.Restart(ctxT(t), "apache2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctxT(t), "nginx"); err == nil || !strings.Contains(err.Error(), "Paused") {
		t.Fatalf("nginx: %v", err)
	}
	if got := strings.Join(h.Calls(), ","); got != "restart apache2,restart nginx" {
		t.Fatalf("calls %s", got)
	}
	if _, err := control.Call(ctxT(t), c.Path, control.Request{Command: control.CommandRestart}); err == nil {
		t.Fatal("a restart without a name was accepted")
	}
}

func TestFollowSeesTheBacklogThenNewEvents(t *testing.T) {
	h, c := newHistory(t)
	h.hub.Record(msg.Down("apache2", 10))
	h.hub.Record(msg.Down("nginx", 20))
	ctx, cancel := context.WithCancel(ctxT(t))
	got := make(chan []events.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(ctx, control.EventQuery{Service: "apache2"}, func(evs []events.Event, _ uint64) error {
			got <- evs
			return nil
		})
	}()
	if b := <-got; len(b) != 1 || b[0].PID != 10 {
		t.Fatalf("backlog %+v", b)
	}
	h.hub.Record(msg.Up("nginx", 21)) // another service's: not sent
	h.hub.Record(msg.TryRestart("apache2", "down", 1))
	h.hub.Record(msg.Up("apache2", 11))
	var seen []string
	for len(seen) < 2 {
		for _, e := range <-got {
			seen = append(seen, e.Event)
		}
	}
	if strings.Join(seen, ",") != "restart,up" {
		t.Fatalf("followed %v", seen)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v", err)
	}
}

// A follower that reads nothing never holds up the hub: its events are
// dropped and counted, and the count reaches it once it reads again.
func TestSlowFollowerLosesEventsNotTheHub(t *testing.T) {
	testpriv.Root(t)
	h := &historyHandler{hub: events.NewHub(0, func() events.Stamp { return events.Stamp{Time: hubClock} })}
	path := filepath.Join(t.TempDir(), "pcheck.sock")
	var logs syncbuf.Buffer
	listen(t, path, h, slog.New(slog.NewTextHandler(&logs, nil)))
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	json.NewEncoder(conn).Encode(control.Request{Command: control.CommandEvents, Follow: true, Buffer: 8})
	r := bufio.NewReader(conn)
	if line, err := r.ReadBytes('\n'); err != nil || !strings.Contains(string(line), `"following":true`) {
		t.Fatalf("first answer %q, %v", line, err) // subscribed: from now on the reader reads nothing
	}
	const total = 20000 // far more than the queue and the socket hold
	published := make(chan time.Duration)
	go func() {
		start := time.Now()
		for i := 0; i < total; i++ {
			h.hub.Record(msg.Down("apache2", i+1))
		}
		published <- time.Since(start)
	}()
	select {
	case took := <-published:
		t.Logf("%d events published in %v to a reader that reads nothing", total, took)
	case <-time.After(10 * time.Second): // well before the server gives up on the reader (30 s)
		t.Fatal("the hub waited for a reader that does not read")
	}
	received, dropped := 0, uint64(0)
	dec := json.NewDecoder(r)
	// Every event is sent or counted: read until they add up (the last
	// answers carry the final count).
	conn.SetReadDeadline(time.Now().Add(deadlineForStream))
	for uint64(received)+dropped < total {
		var resp control.Response
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("after %d events (%d dropped): %v", received, dropped, err)
		}
		received += len(resp.Events)
		dropped = resp.Dropped
	}
	if dropped == 0 || uint64(received)+dropped != total {
		t.Fatalf("received %d, dropped %d: want both to add up to %d, some dropped", received, dropped, total)
	}
	conn.Close()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "too slow") })
	t.Logf("received %d, dropped %d; log: %s", received, dropped, logs.String())
}
