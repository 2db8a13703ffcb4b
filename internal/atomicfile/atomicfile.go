// SPDX-License-Identifier: Apache-2.0

// Package atomicfile replaces small state files so that a crash at any
// moment leaves the old content or the new, never a mix (the reboot guard's
// count, the operator state).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// tempPattern names the temporary files Write leaves behind when it
// is interrupted; no reader looks at them and the next write removes them.
const tempPattern = ".tmp-*"

// Write replaces dir/name with data so that a crash at any moment
// leaves either the old content or the new one under that name, and the new
// one on disk once it returns: write a temporary file in the same directory,
// fsync it, rename it over name, then fsync the directory so the rename
// itself is durable.
func Write(dir, name string, data []byte) error { return replace(dir, name, data, true) }

// Replace is Write without the fsyncs: never a mix of old and new, but the
// new content may be lost in a power cut. For records that are rewritten
// often and matter only within one boot (running restart scripts). It
// leaves the temporary files of crashed writes to RemoveStrayTemps.
func Replace(dir, name string, data []byte) error { return replace(dir, name, data, false) }

func replace(dir, name string, data []byte, durable bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, name+tempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if durable {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
		// Rare writes of a file alone in its directory: clean up after
		// a crashed one here. Replace's owner calls RemoveStrayTemps
		// once instead: its directory holds thousands of records.
		removeStrayTemps(dir, name+tempPattern)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// RemoveStrayTemps deletes the temporary files in dir that writes cut
// short by a crash left (of any name): for the owner of a directory of
// Replace's records, once when it opens it. Failing to is harmless: they
// are never read.
func RemoveStrayTemps(dir string) { removeStrayTemps(dir, "*"+tempPattern) }

// removeStrayTemps deletes dir's files that match pattern.
func removeStrayTemps(dir, pattern string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if ok, _ := filepath.Match(pattern, e.Name()); ok && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
