// SPDX-License-Identifier: Apache-2.0

package trust

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// maxRecord bounds a state record pcheck reads: they are a few KiB.
const maxRecord = 1 << 20

// stateUse says why a state record matters, for messages.
const stateUse = "pcheck believes it as its state (the pids it kills, the services it leaves stopped, the reboots it counted)"

// State checks pcheck's state directory and the records in it that it
// reads: each name of records directly in dir, a file, or a directory of
// records (every entry in it is one). A record must pass the rule as a
// file does, and may not be a symlink: pcheck never follows one there.
// Missing records are fine (pcheck writes them); a missing dir is fine
// where only root could create it.
func (c *Checker) State(dir string, records ...string) {
	c.Dir(dir, "pcheck's state")
	for _, name := range records {
		path := filepath.Join(dir, name)
		fi, ok := c.record(path)
		if !ok || !fi.IsDir() {
			continue
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			c.fail(path, fmt.Sprintf("cannot list it: %v; %s", unwrapPath(err), stateUse))
			continue
		}
		for _, e := range entries {
			c.record(filepath.Join(path, e.Name()))
		}
	}
}

// record checks one record (a file or a directory of records) by its
// Lstat; ok when it exists and passes.
func (c *Checker) record(path string) (os.FileInfo, bool) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		c.fail(path, fmt.Sprintf("cannot check it: %v; %s", unwrapPath(err), stateUse))
		return nil, false
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		c.fail(path, "a symlink, which pcheck does not follow in its state directory; "+stateUse)
		return nil, false
	case !fi.Mode().IsRegular() && !fi.IsDir():
		c.fail(path, "not a regular file; "+stateUse)
		return nil, false
	}
	return fi, c.judge(path, path, fi, stateUse, fi.IsDir())
}

// ReadRecord reads a state record at path: never through a symlink
// (O_NOFOLLOW), and only if the file itself, as opened, passes the rule.
// A missing record is an error wrapping fs.ErrNotExist; one that fails is
// a *Problem.
func ReadRecord(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &Problem{Path: path, Reason: "a symlink, which pcheck does not follow in its state directory; " + stateUse}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &Problem{Path: path, Reason: "not a regular file; " + stateUse}
	}
	c := New()
	if !c.judge(path, path, fi, stateUse, false) {
		return nil, c.Take()[0]
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecord {
		return nil, &Problem{Path: path, Reason: fmt.Sprintf("larger than %d bytes: not a record of pcheck's", maxRecord)}
	}
	return data, nil
}
