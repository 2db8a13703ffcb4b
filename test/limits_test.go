// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/msg/syslogtest"
)

// The resource limits end to end (issue 24), on every backend: a worker
// the master forks after Up breaks a limit of the whole tree, and pcheck
// restarts the service gently (SIGTERM first) or, with limit_action log,
// only says so. The limits sample every limitInterval and act after
// limitFor, so that the tests stay short.
const (
	limitInterval = 500 * time.Millisecond
	limitFor      = 2 * time.Second
)

var watchers = []string{"ebpf", "netlink", "pidfd", "proc"}

// limitServiceScript is the service: a master that, each time DIR/go
// appears, takes it away and forks a worker doing MODE (the restarted
// master finds no DIR/go, so it forks none). DIR/worker.PID says the
// worker is about to act.
const limitServiceScript = `use strict;
my ($mode, $dir) = @ARGV;
my $mib = 100 << 20; # a variable: a constant 'x' x (100 << 20) is built at compile time
$SIG{CHLD} = 'IGNORE';
sub mark { open(my $f, '>', "$dir/$_[0].$$") or die; close $f }
sub worker {
	mark('worker');
	if ($mode eq 'grow') { my $x = 'x' x $mib; sleep 1 while 1 }
	if ($mode eq 'spike') { my $x = 'x' x $mib; select(undef, undef, undef, 0.8); exit 0 }
	if ($mode eq 'fds') { my @f; for (1 .. 300) { open(my $h, '<', '/dev/null') or die; push @f, $h } sleep 1 while 1 }
	if ($mode eq 'spin') { fork(); 1 while 1 }
	die "unknown mode $mode";
}
mark('ready');
while (1) {
	if (unlink("$dir/go")) {
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0) { worker(); exit 0 }
	}
	select(undef, undef, undef, 0.05);
}
`

// limitService is one test's service: a copy of perl of its own (so that
// its processes are told from every other test's), its script and the
// restart script's record of its environment.
type limitService struct {
	dir, exe, env, pfile string
}

func newLimitService(t *testing.T, sc *scene, mode, keys string) *limitService {
	t.Helper()
	perl, err := exec.LookPath("perl")
	if err != nil {
		testpriv.Unavailable(t, "no perl to play the service")
	}
	s := &limitService{dir: sc.dir, exe: filepath.Join(sc.dir, "svc-perl"), env: filepath.Join(sc.dir, "env")}
	b, err := os.ReadFile(perl)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.exe, string(b), 0o755)
	t.Cleanup(func() { killExe(s.exe) })
	script := filepath.Join(sc.dir, "svc.pl")
	writeFile(t, script, limitServiceScript, 0o644)
	start := filepath.Join(sc.dir, "start")
	writeFile(t, start, fmt.Sprintf("#!/bin/sh\nenv | grep ^PWATCH_ | sort | tr '\\n' ' ' >> %[1]s\necho >> %[1]s\nexec setsid -f %[2]s %[3]s %[4]s %[5]s </dev/null >/dev/null 2>&1\n",
		s.env, s.exe, script, mode, sc.dir), 0o755)
	s.pfile = filepath.Join(sc.dir, "svc.pfile")
	writeFile(t, s.pfile, fmt.Sprintf("process %s\nrestart_script %s\nretry_count 5\nlimit_for %d\n%s",
		s.exe, start, int(limitFor/time.Second), keys), 0o644)
	return s
}

// start runs pcheck (sampling every limitInterval) and returns it with
// the service's Up pid, once the master is ready.
func (s *limitService) start(t *testing.T, sc *scene, watcher string) (*pcheckRun, int) {
	t.Helper()
	// pcheck run, with --limit-interval after "run" (exec: the same pid).
	wrap := filepath.Join(s.dir, "with-interval")
	writeFile(t, wrap, "#!/bin/sh\npcheck=$1 cmd=$2\nshift 2\nexec \"$pcheck\" \"$cmd\" --limit-interval "+limitInterval.String()+" \"$@\"\n", 0o755)
	p := startPcheckWrapped(t, []string{wrap}, sc.syslog, sc.dir, watcher, s.pfile)
	lines, err := p.lines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	pid := upPID(t, lines[1], "svc")
	s.waitMark(t, "ready", pid)
	return p, pid
}

func (s *limitService) waitMark(t *testing.T, what string, pid int) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("saw %s.%d", what, pid), func() bool {
		_, err := os.Stat(filepath.Join(s.dir, fmt.Sprintf("%s.%d", what, pid)))
		return err == nil
	})
}

// fork tells the master to fork its worker and returns the worker's pid.
func (s *limitService) fork(t *testing.T, master int) int {
	t.Helper()
	writeFile(t, filepath.Join(s.dir, "go"), "", 0o644)
	var worker int
	pollUntil(t, "saw the worker start", func() bool {
		for _, c := range children(master) {
			if _, err := os.Stat(filepath.Join(s.dir, fmt.Sprintf("worker.%d", c))); err == nil {
				worker = c
				return true
			}
		}
		return false
	})
	return worker
}

// pss is pid's proportional set size in bytes (0 when gone).
func pss(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if f := strings.Fields(string(l)); len(f) >= 2 && f[0] == "Pss:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// overLine waits for the over-limit line of limit and returns it with
// when it came.
func overLine(t *testing.T, p *pcheckRun, re *regexp.Regexp) (string, time.Time) {
	t.Helper()
	m, err := p.syslog.WaitMatch(waitCtx(t), "the over-limit line "+re.String(), func(m syslogtest.Message) bool {
		return m.Ident == "pcheck" && m.PID == p.logPID && re.MatchString(m.Text)
	})
	if err != nil {
		st, serr := (&control.Client{Path: p.control}).Status(context.Background(), "svc")
		if serr == nil && len(st) == 1 && st[0].Usage != nil {
			t.Fatalf("%v; the last sample: %+v", err, *st[0].Usage)
		}
		t.Fatalf("%v; status %+v %v", err, st, serr)
	}
	return m.Text, time.Now()
}

// overLines counts the over-limit lines pcheck has logged.
func overLines(p *pcheckRun) int {
	n := 0
	for _, l := range p.allLines() {
		if strings.Contains(l, "] over ") {
			n++
		}
	}
	return n
}

// sampledAfter waits until padmin status shows a sample of the service
// taken after at, and returns it.
func sampledAfter(t *testing.T, p *pcheckRun, at time.Time) control.ServiceStatus {
	t.Helper()
	c := control.Client{Path: p.control}
	var st control.ServiceStatus
	pollUntil(t, "saw a sample after "+at.Format(time.StampMilli), func() bool {
		got, err := c.Status(context.Background(), "svc")
		if err != nil || len(got) != 1 || got[0].Usage == nil {
			return false
		}
		st = got[0]
		return st.Usage.Time.After(at)
	})
	return st
}

// expectLimitRestart checks the lines after the over-limit line (the
// third, after the first start's two): the master's death by SIGTERM
// (pcheck's gentle kill), the restart and Up; it returns the new master.
func expectLimitRestart(t *testing.T, p *pcheckRun, watcher string, master int) int {
	t.Helper()
	got, err := p.lines(waitCtx(t), 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("as it came to syslog:\n\t%s", strings.Join(got[2:], "\n\t"))
	got = got[3:]
	gentle := regexp.MustCompile(`^Process \['svc',pid=` + strconv.Itoa(master) + `\] (killed by signal 15 \(SIGTERM\)|exited \(status unknown\))`)
	if got[0] != down("svc", master) || !gentle.MatchString(got[1]) || got[2] != tryRestart("svc") || !upLine.MatchString(got[3]) {
		t.Fatalf("after the over-limit line pcheck logged\n\t%s\nwant Down, a death by SIGTERM, Try to restart, Up", strings.Join(got, "\n\t"))
	}
	if watcher != "proc" && !strings.HasPrefix(got[1], fmt.Sprintf("Process ['svc',pid=%d] killed by signal 15 (SIGTERM)", master)) {
		t.Errorf("%s: the master's end %q, want killed by SIGTERM", watcher, got[1])
	}
	return upPID(t, got[3], "svc")
}

// TestLimitMemoryRestart: a worker forked after Up grows the tree past
// memory_max 64M; pcheck restarts the service gently within limit_for +
// 2 × limit_interval of the crossing, once, with its line, and the
// restart script learns why.
func TestLimitMemoryRestart(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range watchers {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			s := newLimitService(t, sc, "grow", "memory_max 64M\nlimit_grace 5\n")
			p, master := s.start(t, sc, watcher)
			worker := s.fork(t, master)
			pollUntil(t, "saw the worker's PSS pass 64 MiB", func() bool { return pss(worker) > 64<<20 })
			crossed := time.Now()
			line, at := overLine(t, p, regexp.MustCompile(`^Process \['svc',pid=`+strconv.Itoa(master)+`\] over memory_max: [0-9.]+ MiB > 64 MiB for [2-5] s, restarting$`))
			t.Logf("%s (%v after the crossing)", line, at.Sub(crossed).Round(time.Millisecond))
			// limit_for and a sampling phase, and on a loaded host what
			// the sampler's and the log's wake-ups may lag.
			if took, bound := at.Sub(crossed), limitFor+2*limitInterval+2*time.Second; took > bound {
				t.Errorf("the restart came %v after the crossing, want within %v", took, bound)
			}
			next := expectLimitRestart(t, p, watcher, master)
			waitGone(t, worker)
			if last := lastLine(t, s.env); !regexp.MustCompile(`PWATCH_CAUSE=limit .*PWATCH_LIMIT=memory_max PWATCH_LIMIT_VALUE=[0-9]+ .*PWATCH_REASON=limit `).MatchString(last + " ") {
				t.Errorf("the restart script's environment %q: want the cause, limit and value", last)
			}
			// Once: the new tree is sampled for longer than limit_for and
			// nothing more happens.
			s.waitMark(t, "ready", next)
			sampledAfter(t, p, time.Now().Add(limitFor+limitInterval))
			if c := overLines(p); c != 1 {
				t.Errorf("%d over-limit lines, want 1", c)
			}
			upWith(t, p, "svc", next)
		})
	}
}

// TestLimitSpikeIgnored: a spike over memory_max shorter than limit_for
// restarts nothing.
func TestLimitSpikeIgnored(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range watchers {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			s := newLimitService(t, sc, "spike", "memory_max 64M\n")
			p, master := s.start(t, sc, watcher)
			worker := s.fork(t, master)
			pollUntil(t, "saw the worker's PSS pass 64 MiB", func() bool { return pss(worker) > 64<<20 || !alive(worker) })
			waitGone(t, worker)
			st := sampledAfter(t, p, time.Now().Add(limitFor+2*limitInterval))
			if c := overLines(p); c != 0 || st.State != "Up" || len(st.PIDs) != 1 || st.PIDs[0] != master {
				t.Errorf("after a spike: %d over-limit lines, status %+v; want none, Up with pid %d", c, st, master)
			}
		})
	}
}

// TestLimitFDs: a worker holding 300 descriptors breaks fds_max 256.
func TestLimitFDs(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range watchers {
		t.Run(watcher, func(t *testing.T) {
			t.Parallel()
			sc := newScene(t)
			s := newLimitService(t, sc, "fds", "fds_max 256\nlimit_grace 5\n")
			p, master := s.start(t, sc, watcher)
			s.fork(t, master)
			line, _ := overLine(t, p, regexp.MustCompile(`^Process \['svc',pid=`+strconv.Itoa(master)+`\] over fds_max: 3[0-9]{2} > 256 for [2-5] s, restarting$`))
			t.Log(line)
			expectLimitRestart(t, p, watcher, master)
			if st := p.waitState(t, "svc", "Up"); st.Usage != nil && st.Usage.FDs == nil {
				t.Errorf("padmin status of a service with fds_max shows no fds: %+v", st.Usage)
			}
		})
	}
}

// TestLimitCPULogOnly: a spinning worker (two processes: the worker and
// its child, so that a busy host still gives the tree more than half a
// core) breaks cpu_max 20 (low, so that the tests running beside it on CI
// cannot starve it below the limit); with limit_action log pcheck says so once and
// restarts nothing. The backends run one after the other: spinning
// workers side by side would share the cores.
func TestLimitCPULogOnly(t *testing.T) {
	testpriv.Root(t)
	for _, watcher := range watchers {
		t.Run(watcher, func(t *testing.T) {
			sc := newScene(t)
			s := newLimitService(t, sc, "spin", "cpu_max 20\nlimit_action log\n")
			p, master := s.start(t, sc, watcher)
			worker := s.fork(t, master)
			line, at := overLine(t, p, regexp.MustCompile(`^Process \['svc',pid=`+strconv.Itoa(master)+`\] over cpu_max: [0-9]+% > 20% for [2-5] s$`))
			t.Log(line)
			st := sampledAfter(t, p, at.Add(limitFor+limitInterval))
			if c := overLines(p); c != 1 || st.State != "Up" || st.PIDs[0] != master || !alive(worker) {
				t.Errorf("limit_action log: %d over-limit lines, status %+v, worker alive %v; want one line, the same master Up, the worker running", c, st, alive(worker))
			}
			if u := st.Usage; u == nil || u.CPUPercent == nil || *u.CPUPercent <= 0 || u.CPUSeconds <= 0 || u.Processes != 3 {
				t.Errorf("padmin status usage %+v: want the spinning tree's CPU and its 3 processes", u)
			}
			if got := p.allLines(); len(got) != 3 || got[2] != line {
				t.Errorf("pcheck logged\n\t%s\nwant the start, Up and the over-limit line only", strings.Join(got, "\n\t"))
			}
		})
	}
}
