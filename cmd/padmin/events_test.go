// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// historyPcheck is fakePcheck with an event history and restart.
type historyPcheck struct {
	fakePcheck
	hub *events.Hub
}

func (h *historyPcheck) EventHub() *events.Hub { return h.hub }

func (h *historyPcheck) Restart(_ context.Context, name string) error {
	if name != "web" {
		return errors.New("not restarted: db is Paused, not Up")
	}
	h.record("restart " + name)
	return nil
}

func listenHistory(t *testing.T) (*historyPcheck, string) {
	t.Helper()
	testpriv.Root(t) // the control socket takes root peers only
	at := time.Now().Add(-time.Hour)
	h := &historyPcheck{hub: events.NewHub(0, func() events.Stamp { return events.Stamp{Time: at} })}
	h.hub.Record(msg.Down("db", 7)) // an hour ago
	at = time.Now()
	h.hub.Record(msg.Down("web", 41))
	// A sender whose comm carries a terminal escape and a newline.
	e := msg.KilledBy(9, false)
	e.SenderPID, e.SenderComm = 99, "x\x1b[8m\nfake"
	h.hub.Record(msg.Ended("web", 41, e))
	// And text the catalogue did not quote, as no event should hold.
	h.hub.Publish(events.Event{Time: at, Event: "ended", Service: "web\x1b[2J", Text: "raw \x1b[8m\n"})
	sock := filepath.Join(t.TempDir(), "pcheck.sock")
	srv, err := control.Listen(sock, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return h, sock
}

func TestEventsPrintsTheHistoryQuoted(t *testing.T) {
	_, sock := listenHistory(t)
	out, errOut, status := padmin(t, "--control-socket", sock, "events")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if status != 0 || errOut != "" || len(lines) != 4 {
		t.Fatalf("status %d, stdout %q, stderr %q", status, out, errOut)
	}
	if !strings.HasPrefix(lines[0], "#1 ") || !strings.HasSuffix(lines[1], " web down: Process ['web',pid=41] Down") {
		t.Errorf("lines %q", lines)
	}
	if strings.ContainsAny(out, "\x1b") || !strings.Contains(lines[2], `(x\x1b[8m\x0afake, uid 0)`) ||
		!strings.Contains(lines[3], `web\x1b[2J ended: raw \x1b[8m\x0a`) {
		t.Errorf("an escape reached the terminal unquoted, or was quoted twice: %q", lines)
	}
	out, _, status = padmin(t, "--control-socket", sock, "events", "--service", "web", "--since", "10m", "--json")
	var evs []events.Event
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var e events.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		evs = append(evs, e)
	}
	if status != 0 || len(evs) != 2 || evs[0].Seq != 2 || evs[1].Event != "ended" || evs[1].Fields[msg.KeySenderPID] != "99" {
		t.Errorf("web's of the last 10m: status %d, %+v", status, evs)
	}
}

func TestRestartSaysOneLine(t *testing.T) {
	h, sock := listenHistory(t)
	out, errOut, status := padmin(t, "--control-socket", sock, "restart", "web")
	if status != 0 || errOut != "" || !strings.HasPrefix(out, "restarting web ") || strings.Count(out, "\n") != 1 {
		t.Errorf("restart web: status %d, stdout %q, stderr %q", status, out, errOut)
	}
	out, errOut, status = padmin(t, "--control-socket", sock, "restart", "db")
	if status != 1 || out != "" || !strings.Contains(errOut, "db is Paused, not Up") {
		t.Errorf("restart db: status %d, stdout %q, stderr %q", status, out, errOut)
	}
	if strings.Join(h.done, ",") != "restart web" {
		t.Errorf("pcheck was asked %q", h.done)
	}
	if out, _, _ := padmin(t, "--control-socket", sock, "restart", "--generate-bash-completion"); out != "web\ndb\n" {
		t.Errorf("padmin restart <TAB> offered %q", out)
	}
}

func TestEventsUsageErrors(t *testing.T) {
	for args, want := range map[string]string{
		"events extra":       "padmin: events: no arguments",
		"events --since -5m": "padmin: --since: -5m0s is not a positive duration",
		"events --since 5":   "padmin: invalid value \"5\" for --since",
		"restart":            "padmin: restart: name one service",
		"restart a b":        "padmin: restart: name one service",
	} {
		out, errOut, status := padmin(t, strings.Fields(args)...)
		if status != 2 || out != "" || !strings.HasPrefix(errOut, want) {
			t.Errorf("padmin %s: status %d, stdout %q, stderr %q; want 2 and %q", args, status, out, errOut, want)
		}
	}
}
