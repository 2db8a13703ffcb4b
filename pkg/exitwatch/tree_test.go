// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// treeCases are the conformance table's cases for the trees that the event
// backends keep; the others must say they keep none.
var treeCases = []struct {
	name string
	run  func(t *testing.T, h *harness, tk treeKeeper)
}{
	{"worker-forked-after-watch", testTreeWorkerAfterWatch},
	{"scanned-descendants", testTreeScannedDescendants},
	{"master-execs-new-image", testTreeMasterReexecs},
	{"exec-starts-a-tree", testTreeFromExec},
	{"own-child-roots-its-tree", testTreeOwnChild},
}

func TestConformanceTrees(t *testing.T) {
	testpriv.Root(t)
	for _, name := range Backends() {
		t.Run(name, func(t *testing.T) {
			for _, c := range treeCases {
				t.Run(c.name, func(t *testing.T) {
					h := openHarness(t, name)
					tk, ok := h.w.(treeKeeper)
					if !ok {
						if name == "ebpf" || name == "netlink" {
							t.Fatalf("%s sees forks but keeps no trees", name)
						}
						t.Skipf("%s sees no forks and keeps no trees: its users scan /proc", name)
					}
					c.run(t, h, tk)
				})
			}
		})
	}
}

// expectTree waits until root's tree holds exactly want: the netlink
// backend learns of a fork a moment after it happened.
func expectTree(t *testing.T, tk treeKeeper, root proc.ID, want ...proc.ID) {
	t.Helper()
	slices.SortFunc(want, func(a, b proc.ID) int { return a.PID - b.PID })
	var got []proc.ID
	waitUntil(t, "tree of "+root.String(), func() bool {
		tree, err := tk.Tree(root)
		if err != nil {
			t.Fatalf("Tree(%v): %v", root, err)
		}
		got = got[:0]
		for _, p := range tree {
			got = append(got, p.ID)
		}
		return slices.Equal(got, want)
	}, func() string { return "tree " + idsString(got) + ", want " + idsString(want) })
}

func idsString(ids []proc.ID) string {
	s := "["
	for i, id := range ids {
		if i > 0 {
			s += " "
		}
		s += id.String()
	}
	return s + "]"
}

// A worker and a child of another program, both forked after the watch
// began, are in the tree; after the master's death they are still there,
// so what is left of it is known without /proc.
func testTreeWorkerAfterWatch(t *testing.T, h *harness, tk treeKeeper) {
	master := testproc.Forker(t, testproc.Binary(t))
	h.watch(master.ID)
	worker := master.Fork()
	helper := master.ForkExec()
	expectTree(t, tk, master.ID, worker, helper)
	master.Signal(syscall.SIGKILL)
	h.waitFor("exit of the master", func(ev Event) bool { return ev.Kind == Exit && ev.ID == master.ID })
	expectTree(t, tk, master.ID, worker, helper)
	// An exited member leaves the tree.
	killID(t, worker)
	expectTree(t, tk, master.ID, helper)
}

// Descendants a scan found before the watch are put in the tree by Track,
// and what they fork follows them.
func testTreeScannedDescendants(t *testing.T, h *harness, tk treeKeeper) {
	master := testproc.Forker(t, testproc.Binary(t))
	worker := master.Fork()
	h.watch(master.ID)
	if err := tk.Track(master.ID, []proc.Process{{ID: worker, PPID: master.ID.PID}}); err != nil {
		t.Fatal(err)
	}
	expectTree(t, tk, master.ID, worker)
}

// A master that execs a new image keeps its pid, start time, watch and
// tree; what it forks afterwards joins the tree.
func testTreeMasterReexecs(t *testing.T, h *harness, tk treeKeeper) {
	master := testproc.Forker(t, testproc.Binary(t))
	h.watch(master.ID)
	before := master.Fork()
	master.Reexec()
	after := master.Fork()
	expectTree(t, tk, master.ID, before, after)
	master.Trigger()
	ev := h.waitFor("exit of the re-executed master", func(ev Event) bool { return ev.Kind == Exit && ev.ID == master.ID })
	if !ev.Known || ev.ExitStatus != 0 || ev.Signal != 0 {
		t.Errorf("exit of the re-executed master: %+v, want status 0", ev)
	}
}

// A process that starts a watched executable starts a tree of its own
// before anyone watches it: a daemon's fork is known as soon as it runs.
func testTreeFromExec(t *testing.T, h *harness, tk treeKeeper) {
	exe := testproc.CopyBinary(t, "pwatch-tree-exec")
	if err := h.w.WatchExec(exe); err != nil {
		t.Fatal(err)
	}
	launched := testproc.Forker(t, exe)
	h.waitFor("exec of the master", func(ev Event) bool { return ev.Kind == Exec && ev.ID == launched.ID })
	daemon := launched.Fork()
	expectTree(t, tk, launched.ID, daemon)
}

// A process pcheck forks (here: this test) roots a tree of its own at its
// fork: what it forks before anyone follows it is in its tree, and Follow
// then changes nothing (a restart script's daemon, forked the moment the
// script runs).
func testTreeOwnChild(t *testing.T, h *harness, tk treeKeeper) {
	script := testproc.Forker(t, testproc.Binary(t))
	daemon := script.Fork()
	expectTree(t, tk, script.ID, daemon)
	if err := tk.Follow(script.ID, 0); err != nil {
		t.Fatal(err)
	}
	expectTree(t, tk, script.ID, daemon)
}

func killID(t *testing.T, id proc.ID) {
	t.Helper()
	tbl, err := proc.NewTable("/proc", nil)
	if err != nil {
		t.Fatal(err)
	}
	left, err := tbl.Kill(t.Context(), []proc.ID{id}, proc.KillOptions{Signal: syscall.SIGKILL})
	if len(left) > 0 || (err != nil && !errors.Is(err, proc.ErrGone)) {
		t.Fatalf("kill %v: left %v, %v", id, left, err)
	}
}

// waitUntil polls cond until it holds, failing with what after
// eventDeadline.
func waitUntil(t *testing.T, what string, cond func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(eventDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never as wanted: %s", what, last())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
