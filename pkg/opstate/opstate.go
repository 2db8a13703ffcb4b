// SPDX-License-Identifier: Apache-2.0

// Package opstate keeps, across pcheck restarts, what must not be
// forgotten when systemd, an upgrade or the watchdog restarts pcheck: the
// services an operator stopped (padmin stop) and those whose retries are
// over. It is one small JSON file in the state directory, replaced
// atomically like the reboot guard's.
package opstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/pwatch/pwatch/internal/atomicfile"
	"github.com/pwatch/pwatch/pkg/trust"
)

// File is the store's file in the state directory.
const File = "services"

// version is the file's format; another is not understood.
const version = 1

// The states kept.
const (
	Paused    = "paused"
	RetryOver = "retry_over"
)

// Entry is one service's kept state.
type Entry struct {
	State string `json:"state"`
	// Since is when it began (wall clock: it must outlive the process),
	// what a re-arm after rearm_after counts from.
	Since time.Time `json:"since"`
}

type file struct {
	Version  int              `json:"version"`
	Services map[string]Entry `json:"services"`
}

// Store is the file and an in-memory copy of it; the file is only read by
// Load, and rewritten whole by each change.
type Store struct {
	dir string

	mu      sync.Mutex
	entries map[string]Entry
}

// Open reads the store of stateDir. A missing file is an empty store; a
// file that cannot be read or understood, or that fails the trust rule
// (pkg/trust.ReadRecord: a symlink, or a file others could have written),
// is an error naming it (pcheck then refuses to start rather than start a
// service an operator stopped).
func Open(stateDir string) (*Store, error) {
	if stateDir == "" {
		return nil, errors.New("service state: no state directory")
	}
	s := &Store{dir: stateDir, entries: map[string]Entry{}}
	data, err := trust.ReadRecord(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	var bad *trust.Problem
	if errors.As(err, &bad) {
		return nil, fmt.Errorf("service state: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("service state %s: %w", s.Path(), err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("service state %s is corrupt: %w (fix it, or remove it to forget every stopped and retried-over service)", s.Path(), err)
	}
	if f.Version != version {
		return nil, fmt.Errorf("service state %s: version %d, want %d", s.Path(), f.Version, version)
	}
	for name, e := range f.Services {
		if e.State != Paused && e.State != RetryOver {
			return nil, fmt.Errorf("service state %s: service %q: state %q is not %s or %s", s.Path(), name, e.State, Paused, RetryOver)
		}
		if e.Since.IsZero() {
			return nil, fmt.Errorf("service state %s: service %q has no since time", s.Path(), name)
		}
		s.entries[name] = e
	}
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return filepath.Join(s.dir, File) }

// Get is service's kept state, if any.
func (s *Store) Get(service string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[service]
	return e, ok
}

// Names are the services with a kept state, sorted.
func (s *Store) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.entries))
	for n := range s.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Keep records service's state, on disk before it returns.
func (s *Store) Keep(service string, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Since = e.Since.Round(0) // a date, without the monotonic reading
	if old, ok := s.entries[service]; ok && old == e {
		return nil
	}
	s.entries[service] = e
	return s.saveLocked()
}

// Drop forgets service's state (padmin start, a re-arm, a hand start).
func (s *Store) Drop(service string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[service]; !ok {
		return nil
	}
	delete(s.entries, service)
	return s.saveLocked()
}

func (s *Store) saveLocked() error {
	data, err := json.MarshalIndent(file{Version: version, Services: s.entries}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.dir, File, append(data, '\n')); err != nil {
		return fmt.Errorf("service state %s: %w", s.Path(), err)
	}
	return nil
}
