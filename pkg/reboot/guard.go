// Package reboot is pcheck's automatic reboot: a guard that counts the
// reboots it allowed in a state file, so that a node whose service never
// comes back does not reboot forever, and the command that reboots.
package reboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

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
// Reboot times are wall-clock times: the monotonic clock starts again at
// every boot, so only the date can tell how long ago the previous boot's
// reboot was. A clock set back must not make the count fall by surprise, so
// a time in the future still counts (until the clock passes it and it ages
// out, or the count is reset).
//
// Only one process is expected to write the file (pcheck; padmin goes
// through it); the mutex serialises that process's callers.
type Guard struct {
	dir       string
	threshold int
	window    time.Duration
	now       func() time.Time

	mu sync.Mutex
}

// Entry is one reboot the guard allowed.
type Entry struct {
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
}

type state struct {
	Version int     `json:"version"`
	Reboots []Entry `json:"reboots"`
}

// NewGuard returns the guard whose state is StateFile in stateDir (created
// on the first write). threshold 0 never allows a reboot; now is the wall
// clock (time.Now outside tests).
func NewGuard(stateDir string, threshold int, window time.Duration, now func() time.Time) (*Guard, error) {
	switch {
	case stateDir == "":
		return nil, errors.New("reboot guard: no state directory")
	case threshold < 0:
		return nil, fmt.Errorf("reboot guard: threshold %d is negative", threshold)
	case window <= 0:
		return nil, fmt.Errorf("reboot guard: window %s is not positive", window)
	}
	if now == nil {
		now = time.Now
	}
	return &Guard{dir: stateDir, threshold: threshold, window: window, now: now}, nil
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
	// Round(0) drops the monotonic reading: the time is stored and compared as a date.
	recent = append(recent, Entry{Time: g.now().Round(0), Service: service})
	if err := g.save(recent); err != nil {
		return false, fmt.Errorf("record reboot in %s: %w", g.Path(), err)
	}
	return true, nil
}

// inWindow keeps the reboots newer than now-window, future ones included
// (see Guard).
func (g *Guard) inWindow(reboots []Entry) []Entry {
	since := g.now().Round(0).Add(-g.window)
	var kept []Entry
	for _, r := range reboots {
		if r.Time.After(since) {
			kept = append(kept, r)
		}
	}
	return kept
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
