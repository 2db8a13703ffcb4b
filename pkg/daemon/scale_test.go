package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// thousand is how many services the scale conformance test starts.
const thousand = 1000

// TestThousandServicesFromOneDirectory, per backend: 1,000 services of one
// pfile directory (one executable, told apart by their arguments) are each
// Up exactly once, with one instance each, and pcheck read /proc a few
// times for all of them, not once or twice per service. A reload that
// changes one pfile replaces that one supervisor only: the other 999 keep
// their supervisor and their pids, and the reload reads /proc a few times,
// not once per service.
func TestThousandServicesFromOneDirectory(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range []string{"ebpf", "netlink", "pidfd", "proc"} {
		t.Run(watcher, func(t *testing.T) { thousandServices(t, watcher) })
	}
}

func thousandServices(t *testing.T, watcher string) {
	work, pfiles := t.TempDir(), t.TempDir()
	exe := filepath.Join(work, "svc")
	b, err := os.ReadFile("/usr/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killAll(exe) })
	script := filepath.Join(work, "start")
	// sleep adds its arguments up: "1000000 i" is a name of its own.
	os.WriteFile(script, []byte("#!/bin/sh\nsetsid "+exe+" 1000000 \"$1\" </dev/null >/dev/null 2>&1 &\n"), 0o755)
	name := func(i int) string { return fmt.Sprintf("s%04d", i) }
	write := func(i int, extra string) {
		body := fmt.Sprintf("process %s\nargs ^1000000 %d$\nrestart_script %s %d\nrestart_timeout 300\n%s", exe, i, script, i, extra)
		if err := os.WriteFile(filepath.Join(pfiles, name(i)+".pfile"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range thousand {
		write(i, "")
	}

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	log, stderr := testLogger(t)
	cfg := Config{Paths: []string{pfiles}, Watcher: watcher, ProcRoot: "/proc", PollInterval: 100 * time.Millisecond,
		ControlSocket: filepath.Join(dir, "pcheck.sock"), StateDir: dir, RebootThreshold: 3, RebootWindow: time.Hour}
	d, svcs, matchers, err := newDaemon(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { defer d.mux.Close(); done <- d.serve(ctx, cfg, svcs, matchers) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	client := control.Client{Path: cfg.ControlSocket}

	status := waitAll(t, client, done, func(st control.ServiceStatus) bool { return st.State == "Up" && len(st.PIDs) == 1 })
	running := runningPIDs(t, exe)
	var watched []int
	for _, st := range status {
		watched = append(watched, st.PIDs[0])
	}
	slices.Sort(watched)
	if len(running) != thousand || !slices.Equal(running, watched) {
		t.Fatalf("%d instances run, %d watched: want one per service, each the watched one", len(running), len(watched))
	}
	ups := upLines.FindAllStringSubmatch(stderr.String(), -1)
	perService := map[string]int{}
	for _, u := range ups {
		perService[u[1]]++
	}
	for i := range thousand {
		if n := perService[name(i)]; n != 1 {
			t.Fatalf("%s was Up %d times, want once", name(i), n)
		}
	}
	// Each service scanned twice (its look, then the look closing the
	// scan-to-watch window) would be 2,000 reads; shared, far fewer.
	startReads := d.table.Reads()
	t.Logf("%s: %d services Up, %d reads of /proc", watcher, thousand, startReads)
	if startReads > thousand/10 {
		t.Fatalf("the start read /proc %d times for %d services: reads are not shared", startReads, thousand)
	}

	supervisors := func() map[string]*supervise.Service {
		d.mu.Lock()
		defer d.mu.Unlock()
		out := map[string]*supervise.Service{}
		for n, r := range d.services {
			out[n] = r.svc
		}
		return out
	}
	before := supervisors()
	write(0, "kill_timeout 7\n")
	readsBefore := d.table.Reads()
	if errs := d.Reload(context.Background(), ""); len(errs) > 0 {
		t.Fatalf("reload: %v", errs)
	}
	after := waitAll(t, client, done, func(st control.ServiceStatus) bool { return st.State == "Up" && len(st.PIDs) == 1 })
	reloadReads := d.table.Reads() - readsBefore
	now := supervisors()
	for i := range thousand {
		n := name(i)
		same := now[n] == before[n]
		if i == 0 && same {
			t.Fatalf("%s's pfile changed but its supervisor was kept", n)
		}
		if i != 0 && !same {
			t.Fatalf("%s's pfile did not change but its supervisor was replaced", n)
		}
		if !slices.Equal(after[n].PIDs, status[n].PIDs) {
			t.Fatalf("%s runs %v after the reload, %v before", n, after[n].PIDs, status[n].PIDs)
		}
	}
	t.Logf("%s: the reload read /proc %d times", watcher, reloadReads)
	if reloadReads > 4 {
		t.Fatalf("a reload of one changed pfile read /proc %d times", reloadReads)
	}
}

// upLines are the catalogue's Up lines on stderr.
var upLines = regexp.MustCompile(`\('(s\d{4})',pid=\d+\) Up`)

// waitAll polls status until every one of the thousand services satisfies
// ok, and returns their statuses by name.
func waitAll(t *testing.T, c control.Client, done <-chan error, ok func(control.ServiceStatus) bool) map[string]control.ServiceStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := c.Status(context.Background(), "")
		good := 0
		got := map[string]control.ServiceStatus{}
		if err == nil {
			for _, st := range list {
				got[st.Name] = st
				if ok(st) {
					good++
				}
			}
			if good == thousand {
				return got
			}
		}
		select {
		case err := <-done:
			t.Fatalf("pcheck ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes %d of %d services are as wanted (status error %v)", good, thousand, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runningPIDs lists the live processes running exe, sorted.
func runningPIDs(t *testing.T, exe string) []int {
	t.Helper()
	tb, err := proc.NewTable("/proc", nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := tb.Scan(proc.Matcher{Exe: exe})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, m := range ms {
		out = append(out, m.ID.PID)
	}
	slices.Sort(out)
	return out
}
