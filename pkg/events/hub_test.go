// SPDX-License-Identifier: Apache-2.0

package events

import (
	"bytes"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
)

func fixedStamp() Stamp {
	return Stamp{Time: time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC), SinceBoot: time.Hour, BootID: "b1"}
}

func TestFromMessageKeepsTheFields(t *testing.T) {
	e := FromMessage(msg.TryRestart("web", "down", 2), fixedStamp())
	if e.Event != "restart" || e.Service != "web" || e.Text != msg.TryRestart("web", "down", 2).Text {
		t.Fatalf("event %+v", e)
	}
	if e.Fields[msg.KeyAttempt] != "2" || e.Fields[msg.KeyReason] != "down" {
		t.Fatalf("fields %v", e.Fields)
	}
	d := FromMessage(msg.Down("web", 412), fixedStamp())
	if d.PID != 412 || d.Event != "down" {
		t.Fatalf("down %+v", d)
	}
}

func TestHubKeepsTheLastAndNumbersThem(t *testing.T) {
	h := NewHub(3, fixedStamp)
	for i := 1; i <= 5; i++ {
		h.Record(msg.Down("web", 100+i))
	}
	got := h.Recent(Filter{})
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 || got[2].PID != 105 {
		t.Fatalf("kept %+v", got)
	}
	h.Record(msg.Down("db", 7))
	if got := h.Recent(Filter{Service: "db"}); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("db %+v", got)
	}
	if got := h.Recent(Filter{AfterSeq: 5}); len(got) != 1 {
		t.Fatalf("after 5: %+v", got)
	}
}

func TestRestoreContinuesTheNumbering(t *testing.T) {
	h := NewHub(10, fixedStamp)
	h.Restore([]Event{{Seq: 7, Event: "up"}, {Seq: 9, Event: "down"}, {Seq: 8, Event: "stale"}})
	e := h.Publish(Event{Event: "up"})
	if e.Seq != 10 {
		t.Fatalf("seq %d, want 10", e.Seq)
	}
	if got := h.Recent(Filter{}); len(got) != 3 || got[1].Event != "down" {
		t.Fatalf("restored %+v", got)
	}
}

func TestSlowSubscriberLosesEventsNeverBlocks(t *testing.T) {
	h := NewHub(10, fixedStamp)
	h.Record(msg.Down("web", 1))
	sub, backlog := h.Subscribe(Filter{Service: "web"}, 2)
	if len(backlog) != 1 {
		t.Fatalf("backlog %+v", backlog)
	}
	for i := 0; i < 5; i++ {
		h.Record(msg.Up("web", 2+i)) // nobody reads: must not block
	}
	h.Record(msg.Up("db", 9)) // filtered out: not counted as dropped
	if sub.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", sub.Dropped())
	}
	if e := <-sub.C(); e.PID != 2 {
		t.Fatalf("first %+v", e)
	}
	sub.Close()
	sub.Close()
	h.Record(msg.Up("web", 50)) // after Close: no send on a closed channel
	n := 0
	for range sub.C() {
		n++
	}
	if n != 1 {
		t.Fatalf("%d left after close, want 1", n)
	}
}

func TestLoggerObserverSeesEveryMessage(t *testing.T) {
	var buf bytes.Buffer
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(10, fixedStamp)
	l.Observe(h.Record)
	l.Log(msg.Down("web", 3))
	l.Observe(nil)
	l.Log(msg.Down("web", 4))
	if got := h.Recent(Filter{}); len(got) != 1 || got[0].PID != 3 {
		t.Fatalf("observed %+v", got)
	}
}
