// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a host's clocks the test sets: the date, the time since
// boot and the boot. Set moves both clocks, as time passing does; step
// moves the date alone, as setting it does; boot starts a new boot.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	up   time.Duration
	boot int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) SinceBoot() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Hour + c.up // booted an hour before the test began
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.t.IsZero() {
		c.up += t.Sub(c.t)
	}
	c.t = t
}

// step sets the date by d; the time since boot does not move.
func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// reboot ends this boot; the next one is down seconds later and has been
// up a minute.
func (c *fakeClock) reboot(down time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.boot++
	c.t = c.t.Add(down + time.Minute)
	c.up = time.Minute - time.Hour
}

func (c *fakeClock) clock() Clock {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Clock{Wall: c.Now, SinceBoot: c.SinceBoot, BootID: fmt.Sprintf("boot-%d", c.boot)}
}

func newGuard(t *testing.T, dir string, threshold int, window time.Duration, clock *fakeClock) *Guard {
	t.Helper()
	g, err := NewGuardClock(dir, threshold, window, clock.clock())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recordingCommand is a reboot command that reboots nothing: each call
// appends "reboot N" to the returned record file, N being the number of
// reboots in the state file at the moment the command runs.
func recordingCommand(t *testing.T, stateDir string) (Command, string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "fake-reboot")
	record := filepath.Join(dir, "calls")
	body := "#!/bin/sh\nn=$(grep -c '\"service\"' \"$2\")\necho \"reboot $n\" >> \"$1\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return Command{Argv: []string{script, record, filepath.Join(stateDir, StateFile)}, Timeout: 30 * time.Second}, record
}

func readCalls(t *testing.T, record string) []string {
	t.Helper()
	data, err := os.ReadFile(record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// Each iteration is one boot: a fresh pcheck (a fresh Guard) on the same
// state directory decides to reboot. Exactly threshold reboots happen, each
// recorded before its command ran, then none.
func TestThresholdAcrossRestarts(t *testing.T) {
	stateDir := t.TempDir()
	cmd, record := recordingCommand(t, stateDir)
	clock := &fakeClock{t: t0}
	for boot := 1; boot <= 6; boot++ {
		g := newGuard(t, stateDir, 3, 24*time.Hour, clock)
		err := Reboot(context.Background(), g, cmd, "apache2", discard())
		if boot <= 3 && err != nil {
			t.Fatalf("boot %d: reboot refused: %v", boot, err)
		}
		if boot > 3 && !errors.Is(err, ErrThresholdReached) {
			t.Fatalf("boot %d: got %v, want ErrThresholdReached", boot, err)
		}
		clock.Set(clock.Now().Add(10 * time.Minute))
		clock.reboot(time.Minute)
	}
	want := []string{"reboot 1", "reboot 2", "reboot 3"}
	if got := readCalls(t, record); !slices.Equal(got, want) {
		t.Errorf("reboot command calls %q, want %q (N = reboots on disk when it ran)", got, want)
	}
	n, err := newGuard(t, stateDir, 3, 24*time.Hour, clock).Count()
	if n != 3 || err != nil {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
}

func TestWindowLetsCountFall(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{}
	g := newGuard(t, dir, 3, 24*time.Hour, clock)
	for _, at := range []time.Duration{0, time.Hour, 2 * time.Hour} {
		clock.Set(t0.Add(at))
		if ok, err := g.Allow("svc"); !ok || err != nil {
			t.Fatalf("reboot at +%s: %v, %v", at, ok, err)
		}
	}
	steps := []struct {
		at    time.Duration
		count int
		allow bool
	}{
		{24*time.Hour - time.Second, 3, false},   // all three still count
		{24*time.Hour + time.Second, 2, true},    // the first fell out; this one is the third again
		{24*time.Hour + 2*time.Second, 3, false}, // full again
		{26*time.Hour + time.Second, 1, true},    // only the last one left, then this
		{100 * 24 * time.Hour, 0, true},          // everything aged out
	}
	for _, s := range steps {
		clock.Set(t0.Add(s.at))
		n, err := g.Count()
		if n != s.count || err != nil {
			t.Errorf("+%s: Count = %d, %v; want %d", s.at, n, err, s.count)
		}
		if ok, err := g.Allow("svc"); ok != s.allow || err != nil {
			t.Errorf("+%s: Allow = %v, %v; want %v", s.at, ok, err, s.allow)
		}
	}
}

// A clock set back (NTP step, an operator) must not let the count fall:
// reboots "in the future" still count.
func TestClockSetBackKeepsCount(t *testing.T) {
	clock := &fakeClock{t: t0}
	g := newGuard(t, t.TempDir(), 2, time.Hour, clock)
	for range 2 {
		if ok, err := g.Allow("svc"); !ok || err != nil {
			t.Fatalf("Allow = %v, %v", ok, err)
		}
	}
	clock.step(-48 * time.Hour)
	if n, err := g.Count(); n != 2 || err != nil {
		t.Errorf("Count after the clock went back = %d, %v; want 2", n, err)
	}
	if ok, err := g.Allow("svc"); ok || err != nil {
		t.Errorf("Allow after the clock went back = %v, %v; want refused", ok, err)
	}
}

func TestThresholdZeroNeverReboots(t *testing.T) {
	dir := t.TempDir()
	cmd, record := recordingCommand(t, dir)
	g := newGuard(t, dir, 0, time.Hour, &fakeClock{t: t0})
	if err := Reboot(context.Background(), g, cmd, "svc", discard()); !errors.Is(err, ErrThresholdReached) {
		t.Errorf("Reboot = %v, want ErrThresholdReached", err)
	}
	if calls := readCalls(t, record); len(calls) != 0 {
		t.Errorf("reboot command ran: %q", calls)
	}
}

func TestNewGuardRejects(t *testing.T) {
	for _, c := range []struct {
		name      string
		dir       string
		threshold int
		window    time.Duration
	}{
		{"no dir", "", 3, time.Hour},
		{"negative threshold", "/x", -1, time.Hour},
		{"zero window", "/x", 3, 0},
		{"negative window", "/x", 3, -time.Second},
	} {
		if g, err := NewGuard(c.dir, c.threshold, c.window, nil); err == nil {
			t.Errorf("%s: NewGuard = %v, want an error", c.name, g)
		}
	}
}

// A state file that cannot be read or understood refuses the reboot with an
// error naming the file, never crashes and is left as found; Reset is the
// way out.
func TestBadStateRefuses(t *testing.T) {
	valid := `{"version":1,"reboots":[{"time":"2025-03-01T11:00:00Z","service":"a"}]}`
	cases := []struct {
		name    string
		make    func(path string) error
		resetOK bool
	}{
		{"garbage", writeString("\x00\x01not json at all"), true},
		{"truncated", writeString(valid[:len(valid)/2]), true},
		{"empty", writeString(""), true},
		{"trailing data", writeString(valid + "{"), true},
		{"other version", writeString(`{"version":2,"reboots":[]}`), true},
		{"no version", writeString(`{"reboots":[]}`), true},
		{"reboot without time", writeString(`{"version":1,"reboots":[{"service":"a"}]}`), true},
		{"bad time", writeString(`{"version":1,"reboots":[{"time":"yesterday","service":"a"}]}`), true},
		// Root reads any file, so unreadable is a directory in its place.
		{"unreadable", func(p string) error { return os.Mkdir(p, 0o700) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFile)
			if err := c.make(path); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, path)
			cmd, record := recordingCommand(t, dir)
			g := newGuard(t, dir, 3, 24*time.Hour, &fakeClock{t: t0})

			ok, err := g.Allow("svc")
			if ok || !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), path) {
				t.Errorf("Allow = %v, %v; want false and ErrBadState naming %s", ok, err, path)
			}
			if _, err := g.Count(); !errors.Is(err, ErrBadState) {
				t.Errorf("Count error = %v, want ErrBadState", err)
			}
			if err := Reboot(context.Background(), g, cmd, "svc", discard()); !errors.Is(err, ErrBadState) {
				t.Errorf("Reboot = %v, want ErrBadState", err)
			}
			if calls := readCalls(t, record); len(calls) != 0 {
				t.Errorf("reboot command ran: %q", calls)
			}
			if after := snapshot(t, path); after != before {
				t.Errorf("state file changed by a refused reboot: %q -> %q", before, after)
			}

			err = g.Reset()
			if c.resetOK != (err == nil) {
				t.Fatalf("Reset = %v, want success %v", err, c.resetOK)
			}
			if err == nil {
				if n, err := g.Count(); n != 0 || err != nil {
					t.Errorf("Count after Reset = %d, %v", n, err)
				}
				if ok, err := g.Allow("svc"); !ok || err != nil {
					t.Errorf("Allow after Reset = %v, %v", ok, err)
				}
			}
		})
	}
}

func writeString(s string) func(string) error {
	return func(p string) error { return os.WriteFile(p, []byte(s), 0o600) }
}

// snapshot is a file's content, or a marker for a directory.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		return "<dir>"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestResetAndCount(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: t0}
	g := newGuard(t, dir, 5, time.Hour, clock)
	if n, err := g.Count(); n != 0 || err != nil {
		t.Fatalf("Count with no file = %d, %v", n, err)
	}
	if err := g.Reset(); err != nil {
		t.Fatalf("Reset with no file: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if ok, err := g.Allow("svc"); !ok || err != nil {
			t.Fatalf("Allow = %v, %v", ok, err)
		}
		if n, err := g.Count(); n != i || err != nil {
			t.Fatalf("Count = %d, %v; want %d", n, err, i)
		}
	}
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	// A fresh guard (a restarted pcheck) sees the reset too.
	if n, err := newGuard(t, dir, 5, time.Hour, clock).Count(); n != 0 || err != nil {
		t.Errorf("Count after Reset = %d, %v; want 0", n, err)
	}
}

func TestStateFileFormat(t *testing.T) {
	dir := t.TempDir()
	g := newGuard(t, dir, 3, time.Hour, &fakeClock{t: t0.In(time.FixedZone("JST", 9*3600))})
	if ok, err := g.Allow("apache2"); !ok || err != nil {
		t.Fatalf("Allow = %v, %v", ok, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version int `json:"version"`
		Reboots []struct {
			Time      string `json:"time"`
			Service   string `json:"service"`
			BootID    string `json:"boot_id"`
			SinceBoot int64  `json:"since_boot_ns"`
			BootTime  string `json:"boot_time"`
		} `json:"reboots"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("state file is not JSON: %v\n%s", err, data)
	}
	if got.Version != 1 || len(got.Reboots) != 1 || got.Reboots[0].Service != "apache2" {
		t.Fatalf("state file %s", data)
	}
	at, err := time.Parse(time.RFC3339Nano, got.Reboots[0].Time)
	if err != nil || !at.Equal(t0) {
		t.Errorf("reboot time %q, want %s", got.Reboots[0].Time, t0)
	}
	r := got.Reboots[0]
	boot, err := time.Parse(time.RFC3339Nano, r.BootTime)
	if r.BootID != "boot-0" || time.Duration(r.SinceBoot) != time.Hour || err != nil || !boot.Equal(t0.Add(-time.Hour)) {
		t.Errorf("reboot's boot %q, since boot %d, boot time %q; want boot-0, 1h, %s", r.BootID, r.SinceBoot, r.BootTime, t0.Add(-time.Hour))
	}
	if fi, err := os.Stat(filepath.Join(dir, StateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// The state directory is created on the first write.
func TestCreatesStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "pwatch")
	g := newGuard(t, dir, 1, time.Hour, &fakeClock{t: t0})
	if ok, err := g.Allow("svc"); !ok || err != nil {
		t.Fatalf("Allow = %v, %v", ok, err)
	}
	if n, err := g.Count(); n != 1 || err != nil {
		t.Errorf("Count = %d, %v", n, err)
	}
}

// A reboot command that fails leaves the node up and the reboot counted, so
// a command that cannot reboot does not loop either.
func TestFailedCommandStaysCounted(t *testing.T) {
	clock := &fakeClock{t: t0}
	g := newGuard(t, t.TempDir(), 1, time.Hour, clock)
	cmd := Command{Argv: []string{"sh", "-c", "echo no permission >&2; exit 1"}}
	if err := Reboot(context.Background(), g, cmd, "svc", discard()); err == nil || !strings.Contains(err.Error(), "no permission") {
		t.Errorf("Reboot = %v, want the command's failure", err)
	}
	if n, err := g.Count(); n != 1 || err != nil {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
	if err := Reboot(context.Background(), g, cmd, "svc", discard()); !errors.Is(err, ErrThresholdReached) {
		t.Errorf("second Reboot = %v, want ErrThresholdReached", err)
	}
}

// Issue 21 #9: reboots are counted by boot and time since boot, so that a
// date change neither clears the count nor keeps it full.
func TestDateStepsNeitherClearNorFill(t *testing.T) {
	allowTwo := func(t *testing.T, g *Guard) {
		t.Helper()
		for range 2 {
			if ok, err := g.Allow("svc"); !ok || err != nil {
				t.Fatalf("Allow = %v, %v", ok, err)
			}
		}
	}
	count := func(t *testing.T, g *Guard, want int, allow bool) {
		t.Helper()
		if n, err := g.Count(); n != want || err != nil {
			t.Errorf("Count = %d, %v; want %d", n, err, want)
		}
		if ok, err := g.Allow("svc"); ok != allow || err != nil {
			t.Errorf("Allow = %v, %v; want %v", ok, err, allow)
		}
	}
	t.Run("forward within a boot", func(t *testing.T) {
		clock := &fakeClock{t: t0}
		g := newGuard(t, t.TempDir(), 2, time.Hour, clock)
		allowTwo(t, g)
		clock.step(48 * time.Hour) // longer than the window
		count(t, g, 2, false)
	})
	t.Run("back within a boot", func(t *testing.T) {
		clock := &fakeClock{t: t0}
		g := newGuard(t, t.TempDir(), 2, time.Hour, clock)
		allowTwo(t, g)
		clock.step(-48 * time.Hour)
		count(t, g, 2, false) // still within the hour
		clock.Set(clock.Now().Add(time.Hour + time.Second))
		count(t, g, 0, true) // an hour later they aged out, the date notwithstanding
	})
	t.Run("forward in the next boot", func(t *testing.T) {
		clock := &fakeClock{t: t0}
		dir := t.TempDir()
		allowTwo(t, newGuard(t, dir, 2, time.Hour, clock))
		clock.reboot(time.Minute)
		g := newGuard(t, dir, 2, time.Hour, clock)
		clock.step(48 * time.Hour)
		count(t, g, 2, false)
	})
	t.Run("back between boots", func(t *testing.T) {
		clock := &fakeClock{t: t0}
		dir := t.TempDir()
		allowTwo(t, newGuard(t, dir, 2, time.Hour, clock))
		clock.reboot(time.Minute)
		clock.step(-10 * 365 * 24 * time.Hour) // a node whose clock came up wrong
		g := newGuard(t, dir, 2, time.Hour, clock)
		count(t, g, 2, false)
		// Never younger than this boot: gone a window after it began.
		clock.Set(clock.Now().Add(time.Hour))
		count(t, g, 0, true)
	})
}

// A record of an older pcheck, without its boot, is dated by its date, as
// that pcheck did.
func TestRecordWithoutBoot(t *testing.T) {
	dir := t.TempDir()
	old := `{"version":1,"reboots":[{"time":"` + t0.Add(-10*time.Minute).Format(time.RFC3339Nano) + `","service":"a"}]}`
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: t0}
	g := newGuard(t, dir, 3, time.Hour, clock)
	if n, err := g.Count(); n != 1 || err != nil {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
	clock.Set(t0.Add(50 * time.Minute))
	if n, err := g.Count(); n != 0 || err != nil {
		t.Errorf("Count an hour after it = %d, %v; want 0", n, err)
	}
}
