// SPDX-License-Identifier: Apache-2.0

// Package reboot is pcheck's automatic reboot: a guard that counts the
// reboots it allowed in a state file, so that a node whose service never
// comes back does not reboot forever, and the command that reboots.
package reboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/trust"
)

// StateFile is the guard's file in the state directory.
const StateFile = "reboots"

// stateVersion is the state file's format; a file of another version is
// not understood and so refuses reboots like a corrupt one.
const stateVersion = 1

// ErrBadState marks a state file that cannot be read or understood. The
// guard then allows no reboot: an unknown count must not become a reboot
// loop. `padmin reboot-count --reset` rewrites the file.
var ErrBadState = errors.New("reboot state file unusable")

// Guard allows at most threshold reboots within window.
//
// A reboot is dated by the boot it happened in (the kernel's boot id) and
// the time since that boot began (CLOCK_BOOTTIME), which no change of the
// date moves: within a boot, setting the clock forward does not clear the
// count and setting it back does not keep it full. A reboot of an earlier
// boot is as old as that boot's start (its date, recorded with it) and the
// time since, measured against this boot's start as dated when pcheck
// first looked; and never younger than this boot: a date set back between
// boots keeps it at most a window past this boot's start.
//
// Only one process is expected to write the file (pcheck; padmin goes
// through it); the mutex serialises that process's callers.
type Guard struct {
	dir       string
	threshold int
	window    time.Duration
	clock     Clock
	bootTime  time.Time // this boot's start, dated when the guard was made

	mu sync.Mutex
}

// Clock is what the guard measures time with.
type Clock struct {
	// Wall is the date (time.Now).
	Wall func() time.Time
	// SinceBoot is the time since this boot began (CLOCK_BOOTTIME: it
	// counts suspend, and setting the date does not move it).
	SinceBoot func() time.Duration
	// BootID names this boot (/proc/sys/kernel/random/boot_id).
	BootID string
}

// SystemClock is the host's: now (time.Now), CLOCK_BOOTTIME and the
// kernel's boot id.
func SystemClock(now func() time.Time) (Clock, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return Clock{}, fmt.Errorf("reboot guard: the boot id: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return Clock{}, fmt.Errorf("reboot guard: CLOCK_BOOTTIME: %w", err)
	}
	return Clock{Wall: now, SinceBoot: sinceBoot, BootID: strings.TrimSpace(string(b))}, nil
}

// sinceBoot reads CLOCK_BOOTTIME, which SystemClock found works.
func sinceBoot() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}

// Entry is one reboot the guard allowed.
type Entry struct {
	// Time is the date it was allowed: for people, and for the entries of
	// a pcheck that recorded no boot.
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	// BootID, SinceBoot and BootTime say when it was without the date:
	// the boot, the time since that boot began, and the date of that
	// boot's start.
	BootID    string        `json:"boot_id,omitempty"`
	SinceBoot time.Duration `json:"since_boot_ns,omitempty"`
	BootTime  time.Time     `json:"boot_time,omitzero"`
}

type state struct {
	Version int     `json:"version"`
	Reboots []Entry `json:"reboots"`
}

// NewGuard returns the guard whose state is StateFile in stateDir (created
// on the first write), on the host's clocks with now as the date
// (time.Now outside tests). threshold 0 never allows a reboot.
func NewGuard(stateDir string, threshold int, window time.Duration, now func() time.Time) (*Guard, error) {
	if now == nil {
		now = time.Now
	}
	clock, err := SystemClock(now)
	if err != nil {
		return nil, err
	}
	return NewGuardClock(stateDir, threshold, window, clock)
}

// NewGuardClock is NewGuard on clock.
func NewGuardClock(stateDir string, threshold int, window time.Duration, clock Clock) (*Guard, error) {
	switch {
	case stateDir == "":
		return nil, errors.New("reboot guard: no state directory")
	case threshold < 0:
		return nil, fmt.Errorf("reboot guard: threshold %d is negative", threshold)
	case window <= 0:
		return nil, fmt.Errorf("reboot guard: window %s is not positive", window)
	case clock.Wall == nil || clock.SinceBoot == nil || clock.BootID == "":
		return nil, errors.New("reboot guard: an incomplete clock")
	}
	g := &Guard{dir: stateDir, threshold: threshold, window: window, clock: clock}
	g.bootTime = clock.Wall().Round(0).Add(-clock.SinceBoot())
	return g, nil
}

// Threshold is the most reboots allowed within Window.
func (g *Guard) Threshold() int { return g.threshold }

// Window is how long a reboot counts.
func (g *Guard) Window() time.Duration { return g.window }

// Path is the state file.
func (g *Guard) Path() string { return filepath.Join(g.dir, StateFile) }

// Count is the number of reboots within the window now.
func (g *Guard) Count() (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	reboots, err := g.load()
	if err != nil {
		return 0, err
	}
	return len(g.inWindow(reboots)), nil
}

// Reset forgets every reboot. It is also the way out of a corrupt file.
func (g *Guard) Reset() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.save(nil)
}

// Allow decides whether service may reboot the node now. When it returns
// true the reboot is already recorded on disk, so a crash between here and
// the reboot still counts it. false with a nil error is the threshold;
// false with an error (ErrBadState, or a failed write) is the state file.
// Either way the caller must not reboot.
func (g *Guard) Allow(service string) (bool, error) {
	if g.threshold == 0 {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	reboots, err := g.load()
	if err != nil {
		return false, err
	}
	recent := g.inWindow(reboots)
	if len(recent) >= g.threshold {
		return false, nil
	}
	// Round(0) drops the monotonic reading: the time is stored as a date.
	recent = append(recent, Entry{
		Time: g.clock.Wall().Round(0), Service: service,
		BootID: g.clock.BootID, SinceBoot: g.clock.SinceBoot(), BootTime: g.thisBoot(reboots),
	})
	if err := g.save(recent); err != nil {
		return false, fmt.Errorf("record reboot in %s: %w", g.Path(), err)
	}
	return true, nil
}

// inWindow keeps the reboots less than a window old (see Guard).
func (g *Guard) inWindow(reboots []Entry) []Entry {
	up, boot := g.clock.SinceBoot(), g.thisBoot(reboots)
	var kept []Entry
	for _, r := range reboots {
		if g.age(r, up, boot) < g.window {
			kept = append(kept, r)
		}
	}
	return kept
}

// thisBoot is the date this boot began: as recorded with a reboot of this
// boot already (the earliest record of it), else as the guard found it.
func (g *Guard) thisBoot(reboots []Entry) time.Time {
	for _, r := range reboots {
		if r.BootID == g.clock.BootID && !r.BootTime.IsZero() {
			return r.BootTime
		}
	}
	return g.bootTime
}

// age is how long ago r was, now being up since this boot, which began at
// the date boot.
func (g *Guard) age(r Entry, up time.Duration, boot time.Time) time.Duration {
	if r.BootID == g.clock.BootID {
		return max(up-r.SinceBoot, 0)
	}
	now := boot.Add(up)
	if r.BootID == "" || r.BootTime.IsZero() {
		// An older pcheck's record, without its boot: dated as that
		// pcheck dated it (one in the future counts).
		return max(now.Sub(r.Time), 0)
	}
	// An earlier boot's: at least as old as this boot.
	return max(now.Sub(r.BootTime.Add(r.SinceBoot)), up)
}

// load reads the state file; a missing one is no reboots yet.
func (g *Guard) load() ([]Entry, error) {
	data, err := trust.ReadRecord(g.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadState, g.Path(), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%w: %s: version %d, want %d", ErrBadState, g.Path(), st.Version, stateVersion)
	}
	for i, r := range st.Reboots {
		if r.Time.IsZero() {
			return nil, fmt.Errorf("%w: %s: reboot %d has no time", ErrBadState, g.Path(), i+1)
		}
	}
	return st.Reboots, nil
}

func (g *Guard) save(reboots []Entry) error {
	if reboots == nil {
		reboots = []Entry{}
	}
	data, err := json.MarshalIndent(state{Version: stateVersion, Reboots: reboots}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(g.dir, StateFile, append(data, '\n'))
}
