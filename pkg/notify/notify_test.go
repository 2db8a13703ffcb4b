// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

func testLogger(t *testing.T, w io.Writer) *msg.Logger {
	t.Helper()
	l, err := msg.NewLogger(msg.Config{Ident: "pcheck", Stderr: w, SyslogSocket: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// fakeRun is a notifier whose command is a function that records each
// notification; hold, when set, makes each run wait for it.
type fakeRun struct {
	mu    sync.Mutex
	got   []Notification
	hold  chan struct{}
	hub   *events.Hub
	n     *Notifier
	stop  context.CancelFunc
	ended chan struct{}
}

func startFake(t *testing.T, cfg Config) *fakeRun {
	t.Helper()
	cfg.Argv = []string{"/bin/true"}
	if cfg.Events == nil {
		cfg.Events, _ = ParseEvents("")
	}
	n, err := New(cfg, testLogger(t, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRun{n: n, ended: make(chan struct{})}
	n.exec = func(ctx context.Context, note Notification) error {
		if f.hold != nil {
			select {
			case <-f.hold:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.got = append(f.got, note)
		return nil
	}
	f.hub = events.NewHub(100, func() events.Stamp { return events.Stamp{Time: time.Now()} })
	sub, _ := f.hub.Subscribe(events.Filter{}, 256)
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() {
		defer close(f.ended)
		n.Run(ctx, sub)
	}()
	t.Cleanup(func() {
		cancel()
		<-f.ended
		sub.Close()
	})
	return f
}

func (f *fakeRun) notes() []Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// death logs a kill -9 of pid as pcheck does: Down, then Ended.
func (f *fakeRun) death(service string, pid int) {
	f.hub.Record(msg.Down(service, pid))
	f.hub.Record(msg.Ended(service, pid, msg.KilledBy(9, false)))
	f.hub.Record(msg.TryRestart(service, "down", 1))
	f.hub.Record(msg.Up(service, pid+1))
}

func count(notes []Notification, service, event string) int {
	n := 0
	for _, note := range notes {
		if note.Service == service && note.Event.Event == event {
			n++
		}
	}
	return n
}

// A service that dies ten times in a minute gives five notifications, each
// with the death's cause, and one summary of the five others when the
// ten-minute window ends: not before.
func TestFlappingServiceGivesTheBurstThenOneSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFake(t, Config{})
		start := time.Now()
		for i := range 10 {
			f.death("web", 100+10*i)
			time.Sleep(6 * time.Second)
		}
		synctest.Wait()
		notes := f.notes()
		if len(notes) != 5 || count(notes, "web", "down") != 5 {
			t.Fatalf("after 10 deaths in a minute: %d notifications %+v, want 5 downs", len(notes), notes)
		}
		first := notes[0]
		if first.PID != 100 || first.Fields[msg.KeyCause] != "signal" || first.Fields[msg.KeySignalName] != "SIGKILL" ||
			!strings.Contains(first.Detail, "killed by signal 9") {
			t.Fatalf("the first notification %+v: want pid 100 with its cause", first)
		}
		if s := f.n.Stats(); s.Suppressed != 5 || s.Sent != 5 {
			t.Fatalf("stats %+v, want 5 sent, 5 suppressed", s)
		}
		time.Sleep(start.Add(DefaultPer).Sub(time.Now()) - time.Millisecond)
		synctest.Wait()
		if n := len(f.notes()); n != 5 {
			t.Fatalf("%d notifications before the window ended, want 5", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		notes = f.notes()
		if len(notes) != 6 {
			t.Fatalf("%d notifications once the window ended, want 6: %+v", len(notes), notes)
		}
		sum := notes[5]
		if sum.Event.Event != Suppressed || sum.Service != "web" || sum.Text != "5 more events of web suppressed in 10 m" || sum.Fields["suppressed"] != "5" {
			t.Fatalf("summary %+v", sum)
		}
		// A new window: the next death is notified at once.
		f.death("web", 999)
		synctest.Wait()
		if notes := f.notes(); len(notes) != 7 || notes[6].PID != 999 {
			t.Fatalf("the first death of a new window: %+v", notes)
		}
	})
}

// Each service has its own window: one flapping does not silence another.
func TestServicesAreLimitedSeparately(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFake(t, Config{Burst: 2, Per: time.Minute})
		for i := range 4 {
			f.death("web", 100+i)
			f.death("db", 200+i)
			time.Sleep(time.Second)
		}
		f.death("db", 300)
		synctest.Wait()
		notes := f.notes()
		if count(notes, "web", "down") != 2 || count(notes, "db", "down") != 2 || len(notes) != 4 {
			t.Fatalf("notifications %+v: want 2 of each", notes)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		notes = f.notes()
		var sums []string
		for _, n := range notes {
			if n.Event.Event == Suppressed {
				sums = append(sums, n.Text)
			}
		}
		want := []string{"3 more events of db suppressed in 1 m", "2 more events of web suppressed in 1 m"}
		if !slices.Equal(sums, want) {
			t.Fatalf("summaries %q, want %q", sums, want)
		}
	})
}

// Only the events chosen are notified; a Down whose Ended line never comes
// is still sent, after a second.
func TestOnlyTheChosenEventsAndALoneDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFake(t, Config{Events: []string{"down", "up"}})
		f.hub.Record(msg.RetryOver("web", "continue"))
		f.hub.Record(msg.Down("web", 5))
		synctest.Wait()
		if n := len(f.notes()); n != 0 {
			t.Fatalf("%d notifications before the Down's wait ended: %+v", n, f.notes())
		}
		time.Sleep(endedWait)
		synctest.Wait()
		notes := f.notes()
		if len(notes) != 1 || notes[0].Event.Event != "down" || notes[0].Detail != "" {
			t.Fatalf("notifications %+v: want the lone down", notes)
		}
		f.hub.Record(msg.Down("db", 6))
		f.hub.Record(msg.Up("db", 7)) // no Ended: the Up sends the Down first
		synctest.Wait()
		notes = f.notes()
		if len(notes) != 3 || notes[1].Event.Event != "down" || notes[2].Event.Event != "up" {
			t.Fatalf("notifications %+v: want down then up of db", notes)
		}
	})
}

// A full queue drops (counted), never waits: the history goes on.
func TestQueueFullDropsAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startFake(t, Config{Queue: 2, Events: []string{"retry_over"}})
		f.hold = make(chan struct{})
		for i := range 6 {
			f.hub.Record(msg.RetryOver("svc"+string(rune('a'+i)), "continue"))
			synctest.Wait() // the runner takes the first and waits in it
		}
		if s := f.n.Stats(); s.Dropped != 3 || s.Sent != 0 {
			t.Fatalf("stats %+v with one run held and a queue of 2: want 3 dropped", s)
		}
		close(f.hold)
		synctest.Wait()
		notes := f.notes()
		if len(notes) != 3 || notes[0].Service != "svca" || notes[2].Service != "svcc" {
			t.Fatalf("sent %+v: want the first three", notes)
		}
		if s := f.n.Stats(); s.Dropped != 3 || s.Sent != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestParseEvents(t *testing.T) {
	got, err := ParseEvents("")
	if err != nil || !slices.Equal(got, []string{"down", "stall", "retry_over", "reboot", "limit"}) {
		t.Fatalf("default: %v %v", got, err)
	}
	if got, err := ParseEvents(" up , down,up"); err != nil || !slices.Equal(got, []string{"up", "down"}) {
		t.Fatalf("up,down: %v %v", got, err)
	}
	for _, bad := range []string{"down,dwon", "down,,up", "suppressed"} {
		_, err := ParseEvents(bad)
		if err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if !strings.Contains(err.Error(), "retry_over") && !strings.Contains(err.Error(), "empty") {
			t.Fatalf("%q: %v does not list the known events", bad, err)
		}
	}
}

// Every event the catalogue logs can be chosen: a message added to pkg/msg
// without its name here fails.
func TestKnownEventsCoverTheCatalogue(t *testing.T) {
	files, err := filepath.Glob("../msg/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no catalogue sources: %v", err)
	}
	re := regexp.MustCompile(`message\(slog\.Level\w+,\s*"([a-z_]+)"`)
	seen := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			seen++
			if !slices.Contains(KnownEvents, string(m[1])) {
				t.Errorf("%s logs event %q, missing from KnownEvents", f, m[1])
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found %d catalogue events: the pattern no longer matches pkg/msg", seen)
	}
}

func TestSummaryText(t *testing.T) {
	for _, tc := range []struct {
		service string
		n       int
		per     time.Duration
		want    string
	}{
		{"web", 12, 10 * time.Minute, "12 more events of web suppressed in 10 m"},
		{"web", 1, 90 * time.Second, "1 more event of web suppressed in 90 s"},
		{"", 3, 2 * time.Hour, "3 more events of pcheck suppressed in 2 h"},
		{"db", 2, 1500 * time.Millisecond, "2 more events of db suppressed in 1.5s"},
	} {
		if got := summaryText(tc.service, tc.n, tc.per); got != tc.want {
			t.Errorf("summaryText(%q, %d, %s) = %q, want %q", tc.service, tc.n, tc.per, got, tc.want)
		}
	}
}

func TestNewRefusesBadLimits(t *testing.T) {
	l := testLogger(t, io.Discard)
	for _, cfg := range []Config{
		{},
		{Argv: []string{"/bin/true"}, Burst: -1},
		{Argv: []string{"/bin/true"}, Per: time.Millisecond},
	} {
		if _, err := New(cfg, l); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
