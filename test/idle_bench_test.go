// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/proc"
)

// idleServices is how many services (one process each) the idle pcheck
// watches, each with an HTTP stall check probing every 10 s.
const idleServices = 100

// BenchmarkPcheckIdle measures what pcheck itself costs while it watches
// many healthy services: its CPU time over a quiet window, as a share of one
// core, and its resident memory. The services are copies of sleep(1) told
// apart by their arguments; the stall checks probe a real listener of the
// benchmark's own.
func BenchmarkPcheckIdle(b *testing.B) {
	testpriv.Root(b)
	sc := newScene(b)
	svc := filepath.Join(sc.dir, "svc")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		b.Fatal(err)
	}
	copyFile(b, sleep, svc)
	b.Cleanup(func() { killExe(svc) })
	srv := newDemo(b, false)
	srv.run(b)
	var pfiles []string
	for i := range idleServices {
		// sleep adds its arguments up: "1000000 i" is a name of its own.
		cmd := exec.Command(svc, "1000000", strconv.Itoa(i))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go cmd.Wait()
		pf := filepath.Join(sc.dir, fmt.Sprintf("svc%03d.pfile", i))
		writeFile(b, pf, fmt.Sprintf(`process         %s
args            ^1000000 %d$
restart_script  /bin/false
_bi_webserv{
    PS_EXEC    DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-:10:0:2:600:%d
    PS_ACTION  DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:0:0
}
`, svc, i, srv.port), 0o644)
		pfiles = append(pfiles, pf)
	}
	p := startPcheck(b, sc.syslog, sc.dir, "ebpf", pfiles...)
	pollUntil(b, "every service adopted", func() bool {
		r := p.runPadmin(b, "status")
		return r.code == 0 && strings.Count(r.out, " Up ") == idleServices
	})

	const window = 10 * time.Second
	b.ResetTimer()
	for range b.N {
		before := cpuTime(b, p.pid())
		time.Sleep(window) // the quiet window being measured
		used := cpuTime(b, p.pid()) - before
		b.ReportMetric(100*used.Seconds()/window.Seconds(), "cpu-%")
	}
	b.StopTimer()
	b.ReportMetric(float64(idleServices), "services")
	reportMemory(b, p.pid())
}

// cpuTime is pid's user and system time so far.
func cpuTime(b testing.TB, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return proc.TicksDuration(uint64(utime + stime))
}

// runTime is the CPU time pid's threads have run so far, in nanoseconds
// (their schedstat): the ticks of cpuTime are too coarse for an idle
// window's few milliseconds. A thread that exits takes its time with it;
// Go's threads rarely exit.
func runTime(b testing.TB, pid int) time.Duration {
	b.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	for _, t := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
		sum += time.Duration(ns)
	}
	return sum
}

// settle waits until pid is idle, at most limit: a second in which it ran
// under a millisecond (a start leaves work behind it: the events of the
// scripts that started the services, memory given back). It returns how
// long that took.
func settle(b testing.TB, pid int, limit time.Duration) time.Duration {
	b.Helper()
	began := time.Now()
	for time.Since(began) < limit {
		before := runTime(b, pid)
		time.Sleep(time.Second) // one second of pcheck's life, measured
		if runTime(b, pid)-before < time.Millisecond {
			break
		}
	}
	return time.Since(began)
}

// reportMemory reports pid's resident memory: all of it (rss-MiB), and
// the anonymous part (anon-MiB), which is what pcheck itself allocated.
// The rest is its executable's file, which the kernel maps whole from
// the page cache (large folios: a 5 MB hello-world Go binary shows 4 MB
// of it resident), shared and clean, the same at 1 service or 5,000.
func reportMemory(b *testing.B, pid int) {
	b.Helper()
	b.ReportMetric(float64(statusKiB(b, pid, "VmRSS"))/1024, "rss-MiB")
	b.ReportMetric(float64(statusKiB(b, pid, "RssAnon"))/1024, "anon-MiB")
}

// statusKiB is a kB field of pid's /proc/PID/status (VmRSS, RssAnon).
func statusKiB(b testing.TB, pid int, field string) int {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatalf("%s in /proc/%d/status: %v", field, pid, err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
