// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
	"github.com/pwatch/pwatch/pkg/proc"
)

// envInPIDNamespace marks this test binary's re-run inside a new pid
// namespace.
const envInPIDNamespace = "PWATCH_TEST_IN_PID_NAMESPACE"

// refusedInPIDNamespace are the backends that cannot work inside a pid
// namespace (the proc connector reports the host's pids).
var refusedInPIDNamespace = []string{"netlink"}

// insidePIDNamespace says whether this run is the re-run inside one.
func insidePIDNamespace() bool { return os.Getenv(envInPIDNamespace) != "" }

// TestConformanceInPIDNamespace re-runs the whole conformance table, the
// trees' cases and auto's choice inside `unshare --pid --fork
// --mount-proc`, as pcheck runs in a container: every backend probe
// accepts there must pass, and netlink must be refused with its reason.
func TestConformanceInPIDNamespace(t *testing.T) {
	testpriv.Root(t)
	if insidePIDNamespace() {
		t.Skip("this is the run inside the namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testpriv.Unavailable(t, "no unshare(1) (util-linux) to make a pid namespace")
	}
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", os.Args[0],
		"-test.run", "^(TestConformance|TestConformanceTrees|TestAutoInPIDNamespaceSeesDeaths)$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envInPIDNamespace+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("inside a pid namespace: %v\n%s", err, out)
	}
	for _, want := range []string{
		"--- PASS: TestConformance/ebpf ", "--- PASS: TestConformance/pidfd ", "--- PASS: TestConformance/proc ",
		"--- PASS: TestConformanceTrees/ebpf ", "--- PASS: TestAutoInPIDNamespaceSeesDeaths ",
		"--- SKIP: TestConformance/netlink/sigkill ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("inside a pid namespace the run lacks %q:\n%s", want, out)
		}
	}
}

// TestAutoInPIDNamespaceSeesDeaths: inside a pid namespace auto takes a
// backend that works there and sees a kill -9 (only run inside one).
func TestAutoInPIDNamespaceSeesDeaths(t *testing.T) {
	if !insidePIDNamespace() {
		t.Skip("run by TestConformanceInPIDNamespace inside a pid namespace")
	}
	if ns, err := proc.PIDNamespace("/proc"); err != nil || ns == proc.InitialPIDNamespace {
		t.Fatalf("not in a pid namespace of its own (%d, %v)", ns, err)
	}
	sink := newSinkLog()
	w, err := Open("auto", testOptions(t), sink)
	if err != nil {
		t.Fatalf("Open(auto) in a pid namespace: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	if slices.Contains(refusedInPIDNamespace, w.Name()) {
		t.Fatalf("auto chose %s, which cannot see this namespace's pids", w.Name())
	}
	h := &harness{t: t, w: w, sink: sink}
	p := testproc.Sleep(t)
	h.watch(p.ID)
	p.Signal(syscall.SIGKILL)
	ev := h.waitFor("the kill of "+p.ID.String(), func(ev Event) bool { return ev.Kind == Exit && ev.ID == p.ID })
	if h.w.Name() == "proc" && !ev.Known {
		return // polling may find it reaped
	}
	if !ev.Known || ev.Signal != int(syscall.SIGKILL) {
		t.Errorf("auto (%s) in a pid namespace reported %+v, want SIGKILL", h.w.Name(), ev)
	}
}
