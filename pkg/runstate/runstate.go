// SPDX-License-Identifier: Apache-2.0

// Package runstate is what a pcheck leaves in its state directory for the
// next one about the processes of this boot, in one record a service
// (run/NAME.run):
//
//   - the restart script it is running for the service, so that a
//     successor (pcheck SIGKILLed, restarted by systemd or its watchdog)
//     waits for a restart in flight instead of starting a second copy of
//     the service;
//   - the trees of the service it watches (each top-level process and the
//     processes below it), so that a successor tells a dead master's
//     orphaned workers from the service.
//
// Processes are named by pid and start time, and every record carries the
// kernel's boot id: a record of another boot is void, never a stranger's
// pid. A record that fits in a page is rewritten in place, in one write
// within that page (see overwrite); a larger one replaces the old
// atomically (a temporary file renamed over it). An empty record is
// blanked, not removed. They are not fsync'd: a crash of the node ends
// every process they could name.
package runstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/pwatch/pwatch/internal/atomicfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/trust"
)

// Dir is the records' directory inside the state directory.
const Dir = "run"

// Store keeps the records of one pcheck.
type Store struct {
	dir      string
	procRoot string
	bootID   string
	// mu makes the changes to dir one at a time: the services of a start
	// write at once, and concurrent creates in one directory contend for
	// its lock in the kernel, which spins; waiting here sleeps. A read
	// takes it too, never to see half a write in place. It guards written,
	// what this pcheck last wrote for each service.
	mu      sync.Mutex
	written map[string]record
}

// Open returns the store under stateDir/run (created at the first write)
// for the processes of procRoot (/proc).
func Open(stateDir, procRoot string) (*Store, error) {
	if stateDir == "" {
		return nil, errors.New("runstate: no state directory")
	}
	b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/random/boot_id"))
	if err != nil {
		return nil, fmt.Errorf("runstate: the boot id: %w", err)
	}
	dir := filepath.Join(stateDir, Dir)
	atomicfile.RemoveStrayTemps(dir) // what writes a crash cut short left
	return &Store{dir: dir, procRoot: procRoot, bootID: strings.TrimSpace(string(b))}, nil
}

// Tree is one watched top-level process and the processes known below it.
type Tree struct {
	Master  proc.ID   `json:"master"`
	Members []proc.ID `json:"members,omitempty"`
	// ScriptOwned: the master was taken for the service because pcheck's
	// own restart script started it, whatever its uid: a successor takes
	// this identity alone for it.
	ScriptOwned bool `json:"script_owned,omitempty"`
}

// record is what a service leaves for a successor, in NAME.run: its
// restart script while one runs, and the trees pcheck watches. One file a
// service, not one a half: a start's creates are its records' main cost.
type record struct {
	BootID string   `json:"boot_id"`
	Script *proc.ID `json:"script,omitempty"`
	Trees  []Tree   `json:"trees,omitempty"`
}

// The records of a pcheck before this one kept each half in its own file
// (NAME.script, NAME.trees): read where NAME.run is missing, removed once
// NAME.run is written.
type legacyScript struct {
	BootID string  `json:"boot_id"`
	Script proc.ID `json:"script"`
}

type legacyTrees struct {
	BootID string `json:"boot_id"`
	Trees  []Tree `json:"trees"`
}

const (
	recordSuffix       = ".run"
	legacyScriptSuffix = ".script"
	legacyTreesSuffix  = ".trees"
)

// ScriptStarted records that service's restart script runs as pid.
func (s *Store) ScriptStarted(service string, pid int) error {
	id, _, err := proc.Identify(s.procRoot, pid)
	if err != nil {
		return fmt.Errorf("runstate: the script's identity: %w", err)
	}
	return s.update(service, func(r *record) { r.Script = &id })
}

// ScriptEnded clears service's script from its record.
func (s *Store) ScriptEnded(service string) error {
	return s.update(service, func(r *record) { r.Script = nil })
}

// Script is the restart script an earlier pcheck of this boot recorded for
// service and never saw end; ok is false when there is none.
func (s *Store) Script(service string) (id proc.ID, ok bool, err error) {
	s.mu.Lock() // never half a write in place
	defer s.mu.Unlock()
	r, _, err := s.load(service)
	if err != nil || r.Script == nil || r.Script.PID <= 0 {
		return proc.ID{}, false, err
	}
	return *r.Script, true, nil
}

// Watched records the trees pcheck watches for service now (none: no
// trees).
func (s *Store) Watched(service string, trees []Tree) error {
	return s.update(service, func(r *record) { r.Trees = trees })
}

// Trees are the trees an earlier pcheck of this boot last watched for
// service; none when there is no record.
func (s *Store) Trees(service string) ([]Tree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, err := s.load(service)
	return r.Trees, err
}

// update changes one half of service's record and writes it: the half
// this pcheck wrote last, or the earlier pcheck's, is kept as it was.
func (s *Store) update(service string, change func(*record)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ours := s.written[service]
	legacy := false
	if !ours {
		var err error
		if r, legacy, err = s.load(service); err != nil {
			r = record{} // unreadable (its readers log why): replaced
		}
	}
	change(&r)
	r.BootID = s.bootID
	name := service + recordSuffix
	var err error
	if r.Script == nil && len(r.Trees) == 0 {
		err = s.blank(name)
	} else {
		err = s.write(name, r)
	}
	if err != nil {
		return err
	}
	if s.written == nil {
		s.written = map[string]record{}
	}
	s.written[service] = r
	if legacy {
		return s.removeLegacy(service)
	}
	return nil
}

// load reads service's record of this boot (empty when there is none, or
// it is of another boot), from NAME.run or else the legacy halves; legacy
// says a legacy file was there.
func (s *Store) load(service string) (r record, legacy bool, err error) {
	ok, err := s.read(service+recordSuffix, &r)
	if err != nil {
		return record{}, false, err
	}
	if !ok {
		if r, legacy, err = s.loadLegacy(service); err != nil {
			return record{}, false, err
		}
	}
	if r.BootID != s.bootID {
		return record{}, legacy, nil
	}
	return r, legacy, nil
}

func (s *Store) loadLegacy(service string) (record, bool, error) {
	var sr legacyScript
	var tr legacyTrees
	hasScript, err := s.read(service+legacyScriptSuffix, &sr)
	if err != nil {
		return record{}, false, err
	}
	hasTrees, err := s.read(service+legacyTreesSuffix, &tr)
	if err != nil {
		return record{}, false, err
	}
	r := record{BootID: s.bootID}
	if hasScript && sr.BootID == s.bootID {
		r.Script = &sr.Script
	}
	if hasTrees && tr.BootID == s.bootID {
		r.Trees = tr.Trees
	}
	return r, hasScript || hasTrees, nil
}

func (s *Store) removeLegacy(service string) error {
	for _, suffix := range []string{legacyScriptSuffix, legacyTreesSuffix} {
		if err := os.Remove(filepath.Join(s.dir, service+suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("runstate: %w", err)
		}
	}
	return nil
}

func (s *Store) write(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if ok, err := s.overwrite(name, data); ok || err != nil {
		return err
	}
	if err := atomicfile.Replace(s.dir, name, data); err != nil {
		return fmt.Errorf("runstate: %w", err)
	}
	return nil
}

// blank makes name a record of nothing, if it exists: an empty record
// (only spaces) reads as none.
func (s *Store) blank(name string) error {
	if _, err := os.Lstat(filepath.Join(s.dir, name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if ok, err := s.overwrite(name, nil); ok || err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("runstate: %w", err)
	}
	return nil
}

// pageSize bounds a write in place: the kernel copies a write into the
// page cache page by page and stops for a fatal signal only between
// pages, so a write within one page that pcheck's death interrupts is
// left whole or not begun (short of a fault on pcheck's own buffer just
// then; a record torn so fails to parse, or names a pid with a start time
// the reader checks).
const pageSize = 4096

// overwrite writes data over name's content in one write, padded with
// spaces (JSON's whitespace) to the old length so that nothing of the old
// record is left: the same file, no new inode. A file system that
// allocates inodes slowly after deletions (ext4 without a journal scans
// past every recently deleted one) made the temp-and-rename of each of a
// start's records most of its CPU. ok is false, with no error, where it
// does not apply: data or the old record exceeds a page, or the file is
// not pcheck's own plain file (a symlink, a link, another owner's, one
// others may write), which the caller then replaces.
func (s *Store) overwrite(name string, data []byte) (ok bool, err error) {
	if len(data) > pageSize {
		return false, nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return false, fmt.Errorf("runstate: %w", err)
	}
	path := filepath.Join(s.dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if err != nil {
		return false, nil // a symlink (ELOOP), or worse: replaced
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("runstate: %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Mode&0o022 != 0 || st.Nlink != 1 || int(st.Uid) != os.Geteuid() || st.Size > pageSize {
		return false, nil
	}
	if pad := int(st.Size) - len(data); pad > 0 {
		data = append(data, bytes.Repeat([]byte{' '}, pad)...)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return true, fmt.Errorf("runstate: %w", err)
	}
	return true, nil
}

// read decodes dir/name into v; false when it does not exist. A file that
// cannot be understood, or fails the trust rule (a symlink, a file others
// could have written: it could name any pid), is an error naming it.
func (s *Store) read(name string, v any) (bool, error) {
	path := filepath.Join(s.dir, name)
	data, err := trust.ReadRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("runstate: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return false, nil // blanked (or created, then its writer died)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("runstate: %s is not a record pcheck understands: %w", path, err)
	}
	return true, nil
}
