// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A reader never finds the state file partly written: while writes go on,
// every read of the final name is absent or whole, valid JSON.
func TestWriteNeverShowsPartialContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, StateFile)
	clock := &fakeClock{t: t0}
	g := newGuard(t, dir, 1000, 1000*time.Hour, clock)

	var stop atomic.Bool
	readerDone := make(chan error, 1)
	var reads atomic.Int64
	go func() {
		for !stop.Load() {
			data, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				readerDone <- err
				return
			}
			var st state
			if err := json.Unmarshal(data, &st); err != nil {
				readerDone <- errors.New("partial state file seen: " + err.Error() + ": " + string(data))
				return
			}
			reads.Add(1)
		}
		readerDone <- nil
	}()
	for i := range 300 {
		clock.Set(t0.Add(time.Duration(i) * time.Second))
		var err error
		if i%50 == 49 {
			err = g.Reset()
		} else if ok, aerr := g.Allow("svc"); !ok {
			err = errors.Join(errors.New("refused"), aerr)
		}
		if err != nil {
			stop.Store(true)
			t.Fatalf("write %d: %v", i, err)
		}
	}
	stop.Store(true)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never read the file; the test proved nothing")
	}
	assertOnlyStateFile(t, dir)
}

// A crash between creating the temporary file and the rename leaves a stray
// temporary file: it is never read, and the next write removes it.
func TestStrayTempFileIgnored(t *testing.T) {
	dir := t.TempDir()
	stray := filepath.Join(dir, StateFile+".tmp-123456")
	if err := os.WriteFile(stray, []byte(`{"version":1,"reboots":[{"time":"2025-03-01T11:`), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: t0}
	g := newGuard(t, dir, 2, time.Hour, clock)
	if n, err := g.Count(); n != 0 || err != nil {
		t.Fatalf("Count with only a stray temp file = %d, %v; want 0", n, err)
	}
	if ok, err := g.Allow("svc"); !ok || err != nil {
		t.Fatalf("Allow = %v, %v", ok, err)
	}
	// A crash during the next write: the old state stays in force.
	if err := os.WriteFile(stray, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := newGuard(t, dir, 2, time.Hour, clock).Count(); n != 1 || err != nil {
		t.Fatalf("Count after a crashed write = %d, %v; want 1", n, err)
	}
	if ok, err := g.Allow("svc"); !ok || err != nil {
		t.Fatalf("Allow = %v, %v", ok, err)
	}
	assertOnlyStateFile(t, dir)
}

func assertOnlyStateFile(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != StateFile {
		t.Errorf("state dir holds %q, want only %q", names, StateFile)
	}
}

// A write that fails (here the rename, a directory sitting at the final
// name) leaves no temporary file behind.
func TestFailedWriteCleansUp(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, StateFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(dir, StateFile, []byte("{}")); err == nil {
		t.Fatal("writeAtomic over a directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries after a failed write, want 1", len(entries))
	}
}
