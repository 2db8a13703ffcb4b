// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/internal/testproc"
)

// replacementSource is the benchmark's service: its first instruction
// reads CLOCK_MONOTONIC, which it appends (in ns, after its pid) to
// argv[1]; then it waits to be killed. It is C because a shell or a Go
// program would add its own start-up to what is measured.
const replacementSource = `#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (argc < 2)
		return 2;
	char buf[48];
	int n = snprintf(buf, sizeof buf, "%d %lld\n", (int)getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0 || write(fd, buf, n) != n)
		return 1;
	close(fd);
	for (;;)
		pause();
}
`

// launcherSource is the restart script: it starts argv[1..] detached, as
// `setsid DAEMON &` does, and returns.
const launcherSource = `#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[1], argv + 1);
		_exit(127);
	}
	return 0;
}
`

var benchBins struct {
	once                  sync.Once
	replacement, launcher string
	err                   error
}

// benchBinaries compiles the benchmark's C helpers once per run.
func benchBinaries(b testing.TB) (replacement, launcher string) {
	b.Helper()
	benchBins.once.Do(func() {
		for _, c := range []struct {
			name, src string
			out       *string
		}{
			{"replacement", replacementSource, &benchBins.replacement},
			{"launcher", launcherSource, &benchBins.launcher},
		} {
			src := filepath.Join(bin.dir, c.name+".c")
			if benchBins.err = os.WriteFile(src, []byte(c.src), 0o644); benchBins.err != nil {
				return
			}
			*c.out = filepath.Join(bin.dir, c.name)
			if out, err := exec.Command("cc", "-O2", "-Wall", "-Werror", "-o", *c.out, src).CombinedOutput(); err != nil {
				benchBins.err = fmt.Errorf("cc %s: %w\n%s", c.name, err, out)
				return
			}
		}
	})
	if errors.Is(benchBins.err, exec.ErrNotFound) {
		testpriv.Unavailable(b, "no C compiler (cc) for the benchmark's helpers")
	}
	if benchBins.err != nil {
		b.Fatal(benchBins.err)
	}
	return benchBins.replacement, benchBins.launcher
}

// killsPerRun is how many kills one measurement takes.
const killsPerRun = 100

// hostSizes are the numbers of unrelated idle processes the recovery is
// measured beside.
var hostSizes = []int{0, 5000, 20000}

// BenchmarkKillToRestart measures the time from kill(2) of a watched
// service to its replacement's first instruction (both on
// CLOCK_MONOTONIC), and to pcheck's Up line, on a host with 0, 5,000 and
// 20,000 unrelated idle processes, per event backend; each kill waits for
// Up before the next. The restart script (a launcher that starts the
// replacement detached, as `setsid DAEMON &`) is also run directly, so the
// table shows its own floor and pcheck's share (median minus floor). The
// bar: with 5,000 processes, at most 1.3 × the quiet host's median; and
// pcheck's own share on a quiet host at most 1 ms.
func BenchmarkKillToRestart(b *testing.B) {
	testpriv.Root(b)
	replacement, launcher := benchBinaries(b)
	quiet := map[string]time.Duration{}
	for _, n := range hostSizes {
		b.Run(fmt.Sprintf("procs=%d", n), func(b *testing.B) {
			testproc.Crowd(b, n)
			b.Run("floor", func(b *testing.B) {
				for range b.N {
					reportKills(b, spawnFloor(b, replacement, launcher), nil, quiet, "floor", n)
				}
			})
			for _, backend := range []string{"ebpf", "netlink"} {
				b.Run(backend, func(b *testing.B) {
					for range b.N {
						toRepl, toUp := killToRestart(b, backend, replacement, launcher)
						reportKills(b, toRepl, toUp, quiet, backend, n)
					}
				})
			}
		})
	}
}

// reportKills reports the medians and p99s, and the ratio of the median to
// the quiet host's of the same run.
func reportKills(b *testing.B, toRepl, toUp []time.Duration, quiet map[string]time.Duration, key string, n int) {
	slices.Sort(toRepl)
	slices.Sort(toUp)
	median := percentile(toRepl, 50)
	if n == 0 {
		quiet[key] = median
	}
	b.ReportMetric(median.Seconds()*1e3, "p50-ms")
	b.ReportMetric(percentile(toRepl, 99).Seconds()*1e3, "p99-ms")
	if q := quiet[key]; q > 0 {
		b.ReportMetric(float64(median)/float64(q), "x-quiet")
	}
	if toUp != nil {
		b.ReportMetric(percentile(toUp, 50).Seconds()*1e3, "up-p50-ms")
	}
}

// spawnFloor starts the launcher directly killsPerRun times: the time
// from its start to the replacement's first instruction.
func spawnFloor(b *testing.B, replacement, launcher string) []time.Duration {
	dir := b.TempDir()
	stamps := filepath.Join(dir, "stamps")
	var samples []time.Duration
	for i := range killsPerRun {
		start := monotonic()
		if err := exec.Command(launcher, replacement, stamps).Run(); err != nil {
			b.Fatal(err)
		}
		pid, at := waitStamp(b, stamps, i+1)
		samples = append(samples, at-start)
		// Our grandchild, alive and unreaped by anyone but init: its pid
		// is still its own.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
	}
	return samples
}

// killToRestart lets pcheck (on backend) start and restart the service
// killsPerRun times.
func killToRestart(b *testing.B, backend, replacement, launcher string) (toRepl, toUp []time.Duration) {
	sc := newScene(b)
	svc := filepath.Join(sc.dir, "svc")
	copyFile(b, replacement, svc)
	stamps := filepath.Join(sc.dir, "stamps")
	pf := filepath.Join(sc.dir, "svc.pfile")
	writeFile(b, pf, fmt.Sprintf(`process           %s
restart_script    %s %s %s
restart_timeout   10
retry_count       1000000
grace             1
kill_timeout      1
`, svc, launcher, svc, stamps), 0o644)
	b.Cleanup(func() { killExe(svc) })

	p := startPcheck(b, sc.syslog, sc.dir, backend, pf)
	// pcheck starts the service itself (start_on_load): Try to restart, Up.
	lines, err := p.lines(waitCtx(b), 2)
	if err != nil {
		b.Fatal(err)
	}
	master := upPID(b, lines[1], "svc")
	first := 2
	for i := range killsPerRun {
		// Up may come before the replacement's first instruction: kill it
		// only once it has run.
		if pid, _ := waitStamp(b, stamps, i+1); pid != master {
			b.Fatalf("pcheck says pid %d is Up, the replacement is %d", master, pid)
		}
		killedAt := monotonic()
		if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
			b.Fatalf("kill %d: %v", master, err)
		}
		lines, err := p.lines(waitCtx(b), first+4)
		if err != nil {
			b.Fatal(err)
		}
		upAt := monotonic()
		got := lines[first:]
		if got[0] != down("svc", master) || got[2] != tryRestart("svc") {
			b.Fatalf("after kill of %d pcheck logged %q", master, got)
		}
		master = upPID(b, got[3], "svc")
		first += 4
		_, at := waitStamp(b, stamps, i+2)
		toRepl = append(toRepl, at-killedAt)
		toUp = append(toUp, upAt-killedAt)
	}
	return toRepl, toUp
}

// waitStamp waits for the n-th line of the replacements' stamp file and
// returns its pid and CLOCK_MONOTONIC time.
func waitStamp(b testing.TB, path string, n int) (int, time.Duration) {
	b.Helper()
	var lines []string
	pollUntil(b, fmt.Sprintf("%d stamps in %s", n, path), func() bool {
		data, err := os.ReadFile(path)
		lines = strings.Split(strings.TrimSpace(string(data)), "\n")
		return err == nil && len(lines) >= n
	})
	var pid int
	var ns int64
	if _, err := fmt.Sscan(lines[n-1], &pid, &ns); err != nil {
		b.Fatalf("stamp file %s line %d: %v", path, n, err)
	}
	return pid, time.Duration(ns)
}

func upPID(b testing.TB, line, name string) int {
	b.Helper()
	m := upLine.FindStringSubmatch(line)
	if m == nil || m[1] != name {
		b.Fatalf("pcheck logged %q, want %q", line, up(name, 0))
	}
	pid, _ := strconv.Atoi(m[2])
	return pid
}

func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
