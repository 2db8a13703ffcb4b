// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// tinyStateDir mounts a 64 KiB tmpfs, root's and 0700, for the test.
func tinyStateDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		testpriv.Unavailable(t, "cannot mount a tmpfs: "+err.Error())
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes dir/filler until the filesystem is full; the returned
// function frees the room again.
func fill(t *testing.T, dir string) func() {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 512)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return func() {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// Issue 21 #8: padmin stop and start whose state cannot be kept (a full
// disk) answer an error and change nothing: a stop a pcheck restart would
// forget, or a start it would undo, is no command at all.
func TestCommandWhoseStateCannotBeKeptChangesNothing(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	newFakeService(t, work, pfiles, "alpha", "")
	state := tinyStateDir(t)
	p := startPcheck(t, pfiles, inStateDir(state))
	p.waitStatus(t, "alpha up", upWith("alpha", 0))
	ctx := context.Background()

	free := fill(t, state)
	if err := p.client.Stop(ctx, "alpha"); err == nil {
		t.Fatal("stop answered success though its state could not be written")
	}
	if st := p.waitStatus(t, "any", func(map[string]control.ServiceStatus) bool { return true }); st["alpha"].State != "Up" {
		t.Fatalf("after a refused stop alpha is %s, want Up (watched as before)", st["alpha"].State)
	}
	free()
	if err := p.client.Stop(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "alpha paused", stateIs("alpha", "Paused"))

	free = fill(t, state)
	if err := p.client.Start(ctx, "alpha"); err == nil {
		t.Fatal("start answered success though its state could not be written")
	}
	if st := p.waitStatus(t, "any", func(map[string]control.ServiceStatus) bool { return true }); st["alpha"].State != "Paused" {
		t.Fatalf("after a refused start alpha is %s, want Paused", st["alpha"].State)
	}
	free()
	if err := p.client.Start(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "alpha up again", upWith("alpha", 0))
	p.stop(t)
}
