// SPDX-License-Identifier: Apache-2.0

package runstate

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/proc"
)

// fakeBoot is a proc root with only a boot id.
func fakeBoot(t *testing.T, id string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys/kernel/random")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "boot_id"), []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestScriptRecordRoundTrip(t *testing.T) {
	state := t.TempDir()
	s := mustOpen(t, state, "/proc")
	if _, ok, err := s.Script("web"); ok || err != nil {
		t.Fatalf("Script before any record = %v, %v", ok, err)
	}
	if err := s.ScriptStarted("web", os.Getpid()); err != nil {
		t.Fatal(err)
	}
	me, _, err := proc.Identify("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A successor of the same boot reads it.
	next := mustOpen(t, state, "/proc")
	if id, ok, err := next.Script("web"); !ok || err != nil || id != me {
		t.Fatalf("Script = %v, %v, %v; want %v", id, ok, err, me)
	}
	// Another boot's record names no process of this one.
	other := mustOpen(t, state, fakeBoot(t, "another-boot"))
	if _, ok, err := other.Script("web"); ok || err != nil {
		t.Fatalf("another boot's record was taken: %v, %v", ok, err)
	}
	if err := next.ScriptEnded("web"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := next.Script("web"); ok {
		t.Fatal("the ended script is still recorded")
	}
}

func TestTreesRoundTripAndRemoval(t *testing.T) {
	s := mustOpen(t, t.TempDir(), fakeBoot(t, "b1"))
	trees := []Tree{{Master: proc.ID{PID: 100, StartTime: 5}, Members: []proc.ID{{PID: 101, StartTime: 6}}}}
	if err := s.Watched("web", trees); err != nil {
		t.Fatal(err)
	}
	got, err := s.Trees("web")
	if err != nil || len(got) != 1 || got[0].Master != trees[0].Master || len(got[0].Members) != 1 || got[0].Members[0] != trees[0].Members[0] {
		t.Fatalf("Trees = %+v, %v", got, err)
	}
	if err := s.Watched("web", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Trees("web"); len(got) != 0 || err != nil {
		t.Fatalf("Trees after removal = %+v, %v", got, err)
	}
}

// A record that cannot be understood is an error naming the file, never a
// crash, and never taken for a process.
func TestCorruptRecordIsAnErrorNamingIt(t *testing.T) {
	state := t.TempDir()
	s := mustOpen(t, state, fakeBoot(t, "b1"))
	path := filepath.Join(state, Dir, "web.run")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Script("web"); ok || err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Script of a corrupt record = %v, %v; want an error naming %s", ok, err, path)
	}
}

// Issue 21 #3: a record is read only if it is root's own file, never
// through a symlink: a forged one could name any pid for pcheck to kill.
func TestForgedRecordsAreRefused(t *testing.T) {
	testpriv.Root(t)
	state := t.TempDir()
	s := mustOpen(t, state, "/proc")
	if err := s.ScriptStarted("web", os.Getpid()); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(state, Dir, "web.run")
	// A symlink to a good record is still refused.
	if err := os.Rename(record, filepath.Join(state, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(state, "elsewhere"), record); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Script("web"); ok || err == nil || !strings.Contains(err.Error(), record+": a symlink") {
		t.Errorf("Script through a symlink = %v, %v; want refused, naming it", ok, err)
	}
	os.Remove(record)
	if err := os.Rename(filepath.Join(state, "elsewhere"), record); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(record, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Script("web"); ok || err == nil || !strings.Contains(err.Error(), record+": owned by uid 65534") {
		t.Errorf("Script of uid 65534's record = %v, %v; want refused, naming it", ok, err)
	}
}

// A write that a crash cut short leaves a temporary file behind: the next
// pcheck's Open removes it (writes do not list the directory each time),
// and leaves the records.
func TestOpenRemovesStrayTemps(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web.run.tmp-123", "db.run.tmp-456", "web.run"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(state, fakeBoot(t, "b1")); err != nil {
		t.Fatal(err)
	}
	wantOnlyRecord(t, dir, "web.run")
}

// A record is rewritten in place (the same inode: no create, no delete
// per change), a shorter one over a longer one reads as itself, and an
// ended one reads as none.
func TestRecordsAreRewrittenInPlace(t *testing.T) {
	state := t.TempDir()
	s := mustOpen(t, state, fakeBoot(t, "b1"))
	path := filepath.Join(state, Dir, "web.run")
	long := []Tree{{Master: proc.ID{PID: 100, StartTime: 5}, Members: []proc.ID{{PID: 101, StartTime: 6}, {PID: 102, StartTime: 7}}}}
	short := []Tree{{Master: proc.ID{PID: 9, StartTime: 1}}}
	if err := s.Watched("web", long); err != nil {
		t.Fatal(err)
	}
	first := inode(t, path)
	if err := s.Watched("web", short); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Trees("web"); err != nil || len(got) != 1 || got[0].Master != short[0].Master || len(got[0].Members) != 0 {
		t.Fatalf("Trees after a shorter record = %+v, %v; want %+v", got, err, short)
	}
	if err := s.Watched("web", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Trees("web"); len(got) != 0 || err != nil {
		t.Fatalf("Trees after the end = %+v, %v; want none", got, err)
	}
	if now := inode(t, path); now != first {
		t.Errorf("the record is inode %d after its changes, was %d: want it rewritten in place", now, first)
	}
	// An empty file (its writer died between create and write) is none.
	if err := os.WriteFile(filepath.Join(state, Dir, "db.run"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Script("db"); ok || err != nil {
		t.Errorf("Script of an empty record = %v, %v; want none", ok, err)
	}
}

// A record that is not pcheck's own plain file is replaced, never written
// through: a hard link's other name keeps its content, and one others may
// write is replaced by one they may not.
func TestALinkedRecordIsReplacedNotWrittenThrough(t *testing.T) {
	state := t.TempDir()
	s := mustOpen(t, state, fakeBoot(t, "b1"))
	if err := s.Watched("web", []Tree{{Master: proc.ID{PID: 100, StartTime: 5}}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(state, Dir, "web.run")
	other := filepath.Join(state, "other")
	if err := os.Link(path, other); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Watched("web", []Tree{{Master: proc.ID{PID: 200, StartTime: 8}}}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(other); string(after) != string(before) {
		t.Errorf("the link's other name changed to %q: the write went through it", after)
	}
	if got, err := s.Trees("web"); err != nil || len(got) != 1 || got[0].Master.PID != 200 {
		t.Errorf("Trees = %+v, %v; want the new record", got, err)
	}
	// One others may write (which no read would believe) is replaced too.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := s.Watched("web", []Tree{{Master: proc.ID{PID: 300, StartTime: 9}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Trees("web"); err != nil || len(got) != 1 || got[0].Master.PID != 300 {
		t.Errorf("Trees after a write over a mode 0666 record = %+v, %v; want the new record, believed", got, err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The script and the trees share one file: each change keeps the other
// half, and the end of the script leaves the trees.
func TestScriptAndTreesShareOneRecord(t *testing.T) {
	state := t.TempDir()
	s := mustOpen(t, state, "/proc")
	trees := []Tree{{Master: proc.ID{PID: 100, StartTime: 5}}}
	if err := s.ScriptStarted("web", os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if err := s.Watched("web", trees); err != nil {
		t.Fatal(err)
	}
	next := mustOpen(t, state, "/proc") // a successor, while the script runs
	if id, ok, err := next.Script("web"); !ok || err != nil || id.PID != os.Getpid() {
		t.Fatalf("Script = %v, %v, %v; want this process", id, ok, err)
	}
	if err := s.ScriptEnded("web"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := next.Script("web"); ok || err != nil {
		t.Errorf("Script after its end = %v, %v; want none", ok, err)
	}
	if got, err := next.Trees("web"); err != nil || len(got) != 1 || got[0].Master != trees[0].Master {
		t.Errorf("Trees after the script's end = %+v, %v; want %+v", got, err, trees)
	}
	wantOnlyRecord(t, filepath.Join(state, Dir), "web.run")
}

// A pcheck before this one kept the halves in NAME.script and NAME.trees:
// they are read while NAME.run is missing, and the first change writes
// NAME.run with the half it did not change and removes them.
func TestLegacyRecordsAreReadThenReplaced(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"web.script": `{"boot_id":"b1","script":{"PID":300,"StartTime":9}}`,
		"web.trees":  `{"boot_id":"b1","trees":[{"master":{"PID":100,"StartTime":5}}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, state, fakeBoot(t, "b1"))
	script := proc.ID{PID: 300, StartTime: 9}
	if id, ok, err := s.Script("web"); !ok || err != nil || id != script {
		t.Fatalf("Script of the legacy record = %v, %v, %v; want %v", id, ok, err, script)
	}
	if got, err := s.Trees("web"); err != nil || len(got) != 1 || got[0].Master.PID != 100 {
		t.Fatalf("Trees of the legacy record = %+v, %v", got, err)
	}
	if err := s.Watched("web", []Tree{{Master: proc.ID{PID: 200, StartTime: 8}}}); err != nil {
		t.Fatal(err)
	}
	wantOnlyRecord(t, dir, "web.run")
	if id, ok, err := s.Script("web"); !ok || err != nil || id != script {
		t.Errorf("Script after a change of the trees = %v, %v, %v; want the legacy %v kept", id, ok, err, script)
	}
	if got, err := s.Trees("web"); err != nil || len(got) != 1 || got[0].Master.PID != 200 {
		t.Errorf("Trees after the change = %+v, %v; want pid 200", got, err)
	}
}

// wantOnlyRecord fails t unless dir holds name alone.
func wantOnlyRecord(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		t.Errorf("%s holds %v, want only %s", dir, entries, name)
	}
}

// mustOpen opens the store in state, its boot id read under procRoot.
func mustOpen(t *testing.T, state, procRoot string) *Store {
	t.Helper()
	s, err := Open(state, procRoot)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
