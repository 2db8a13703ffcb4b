// SPDX-License-Identifier: Apache-2.0

// Package runstate is what a pcheck leaves in its state directory for the
// next one about the processes of this boot:
//
//   - the restart script it is running for a service, so that a successor
//     (pcheck SIGKILLed, restarted by systemd or its watchdog) waits for a
//     restart in flight instead of starting a second copy of the service;
//   - the trees of the service it watches (each top-level process and the
//     processes below it), so that a successor tells a dead master's
//     orphaned workers from the service.
//
// Processes are named by pid and start time, and every record carries the
// kernel's boot id: a record of another boot is void, never a stranger's
// pid. Records are replaced atomically (a temporary file renamed over the
// old one). They are not fsync'd: a crash of the node ends every process
// they could name.
package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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

type scriptRecord struct {
	BootID string  `json:"boot_id"`
	Script proc.ID `json:"script"`
}

type treesRecord struct {
	BootID string `json:"boot_id"`
	Trees  []Tree `json:"trees"`
}

// ScriptStarted records that service's restart script runs as pid.
func (s *Store) ScriptStarted(service string, pid int) error {
	id, _, err := proc.Identify(s.procRoot, pid)
	if err != nil {
		return fmt.Errorf("runstate: the script's identity: %w", err)
	}
	return s.write(service+".script", scriptRecord{BootID: s.bootID, Script: id})
}

// ScriptEnded removes service's script record.
func (s *Store) ScriptEnded(service string) error {
	return s.remove(service + ".script")
}

// Script is the restart script an earlier pcheck of this boot recorded for
// service and never saw end; ok is false when there is none.
func (s *Store) Script(service string) (id proc.ID, ok bool, err error) {
	var r scriptRecord
	if ok, err := s.read(service+".script", &r); !ok || err != nil {
		return proc.ID{}, false, err
	}
	if r.BootID != s.bootID || r.Script.PID <= 0 {
		return proc.ID{}, false, nil
	}
	return r.Script, true, nil
}

// Watched records the trees pcheck watches for service now; none removes
// the record.
func (s *Store) Watched(service string, trees []Tree) error {
	if len(trees) == 0 {
		return s.remove(service + ".trees")
	}
	return s.write(service+".trees", treesRecord{BootID: s.bootID, Trees: trees})
}

// Trees are the trees an earlier pcheck of this boot last watched for
// service; none when there is no record.
func (s *Store) Trees(service string) ([]Tree, error) {
	var r treesRecord
	if ok, err := s.read(service+".trees", &r); !ok || err != nil {
		return nil, err
	}
	if r.BootID != s.bootID {
		return nil, nil
	}
	return r.Trees, nil
}

func (s *Store) write(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(s.dir, name, data); err != nil {
		return fmt.Errorf("runstate: %w", err)
	}
	return nil
}

func (s *Store) remove(name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("runstate: %w", err)
	}
	return nil
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
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("runstate: %s is not a record pcheck understands: %w", path, err)
	}
	return true, nil
}
