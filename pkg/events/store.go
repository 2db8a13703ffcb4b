// SPDX-License-Identifier: Apache-2.0

package events

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// The history's files in the state directory: two generations of JSON
// lines, one event a line, oldest first. New events are appended to File;
// when it holds keep events it becomes OldFile (replacing the one before)
// and a new File starts, so the two always hold the last keep events at
// least and 2×keep at most, and no event is ever rewritten.
const (
	File    = "events.jsonl"
	OldFile = "events.1.jsonl"
)

// maxGeneration bounds a generation's bytes as well (a generation also
// rotates when the next line would pass it), so that each stays well below
// what pkg/trust.ReadRecord reads (1 MiB). Events are a few hundred bytes:
// 1,000 of them fit unless they average over 512 bytes.
const maxGeneration = 512 << 10

// syncDelay is how long an appended event may wait for its fsync. A line
// is in the page cache once Append returns, so a pcheck SIGKILL loses
// nothing; only a power cut loses up to this much. Syncing each event
// would put a disk flush into every recovery, since events are written
// as they are logged.
const syncDelay = time.Second

// EventReboot is the event of the line logged just before the node is
// rebooted: the store syncs it at once, so that a reboot that comes before
// the next sync cannot lose it.
const EventReboot = "reboot"

// Store keeps the history on disk: OpenStore reads it back, Append (a hub
// sink) adds to it, Close syncs it.
type Store struct {
	dir  string
	keep int
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File
	lines   int
	size    int
	dirty   bool
	retired []*os.File // rotated generations, for the syncer to sync and close
	newName bool       // a file was created or renamed: the directory needs a sync too
	failing bool       // the last write failed (logged once)

	wake      chan struct{}
	done      chan struct{}
	gone      chan struct{}
	closeOnce sync.Once
}

// OpenStore reads the history kept in dir back (oldest first, at most keep
// events) and opens it for appending. Nothing it finds there stops pcheck:
// a torn last line (a crash mid-write) is dropped, a file that is corrupt
// or fails the trust rule is set aside, each with a warning naming it. An
// error means only that the history cannot be kept on disk.
func OpenStore(dir string, keep int, log *slog.Logger) (*Store, []Event, error) {
	if keep <= 0 {
		keep = DefaultKeep
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: dir, keep: keep, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}), gone: make(chan struct{})}
	if err := os.MkdirAll(dir, 0o700); err != nil { // as the other records' writers do
		return nil, nil, fmt.Errorf("event history: %w", err)
	}
	old := s.read(OldFile)
	cur := s.read(File)
	f, err := os.OpenFile(filepath.Join(dir, File), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, lastOf(append(old.events, cur.events...), keep), fmt.Errorf("event history: %w", err)
	}
	if cur.unterminated {
		f.Write([]byte{'\n'}) // the last line was whole but for its newline
	}
	s.f, s.lines, s.size, s.newName = f, len(cur.events), cur.size, true
	go s.syncLoop()
	return s, lastOf(append(old.events, cur.events...), keep), nil
}

func lastOf(evs []Event, n int) []Event {
	if len(evs) > n {
		return evs[len(evs)-n:]
	}
	return evs
}

// Path is the file new events go to.
func (s *Store) Path() string { return filepath.Join(s.dir, File) }

// Append writes e at the end of the history; it is the hub's sink, called
// in Seq order. It does not wait for the disk (see syncDelay), except for
// a reboot's event. A failed write is logged once, until one succeeds.
func (s *Store) Append(e Event) {
	line, err := json.Marshal(e)
	if err != nil {
		s.log.Error("event history: cannot encode an event", "seq", e.Seq, "error", err)
		return
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	if s.lines >= s.keep || (s.lines > 0 && s.size+len(line) > maxGeneration) {
		s.rotateLocked()
	}
	if _, err := s.f.Write(line); err != nil {
		if !s.failing {
			s.log.Error("event history: cannot write to it; events are kept in memory only until a write succeeds", "file", s.Path(), "error", err)
		}
		s.failing = true
		return
	}
	if s.failing {
		s.log.Info("event history: writing again", "file", s.Path())
	}
	s.failing = false
	s.lines++
	s.size += len(line)
	s.dirty = true
	if e.Event == EventReboot {
		if err := s.f.Sync(); err != nil {
			s.log.Warn("event history: cannot sync it before the reboot", "file", s.Path(), "error", err)
		}
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// rotateLocked makes the current generation the old one and starts a new
// one: a rename and an open, nothing rewritten. The old file is synced
// and closed by the syncer.
func (s *Store) rotateLocked() {
	if err := os.Rename(s.Path(), filepath.Join(s.dir, OldFile)); err != nil {
		s.log.Warn("event history: cannot rotate it; it grows until it can", "file", s.Path(), "error", err)
		return
	}
	f, err := os.OpenFile(s.Path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		s.log.Error("event history: cannot start a new file; events are kept in memory only", "file", s.Path(), "error", err)
		f = nil
	}
	s.retired = append(s.retired, s.f)
	s.f, s.lines, s.size, s.dirty, s.newName = f, 0, 0, f != nil, true
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// syncLoop syncs what was appended, at most syncDelay after it was; an
// idle history costs nothing.
func (s *Store) syncLoop() {
	defer close(s.gone)
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		select {
		case <-s.done:
			return
		case <-time.After(syncDelay):
		}
		s.sync()
	}
}

// sync flushes the current file, the rotated ones and, after a file was
// created or renamed, the directory. The disk is waited for outside the lock: Append never
// waits for it.
func (s *Store) sync() {
	s.mu.Lock()
	f, dirty, retired, newName := s.f, s.dirty, s.retired, s.newName
	s.dirty, s.retired, s.newName = false, nil, false
	s.mu.Unlock()
	for _, old := range retired {
		old.Sync()
		old.Close()
	}
	if dirty && f != nil {
		if err := f.Sync(); err != nil {
			s.log.Warn("event history: cannot sync it", "file", s.Path(), "error", err)
		}
	}
	if newName {
		if d, err := os.Open(s.dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
}

// Close syncs the history and stops writing it.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	<-s.gone
	s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
