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
)

// stampSource is the benchmark's restart "script": its first instruction
// reads CLOCK_MONOTONIC, which it appends (in ns) to argv[1]; then it starts
// argv[2:] detached, as a restart script starts a daemon, and returns. It is
// C because a shell or a Go program would add its own start-up (fork of
// date, the Go runtime) to what is measured.
const stampSource = `#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (argc < 3)
		return 2;
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0 || write(fd, buf, n) != n)
		return 1;
	close(fd);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[2], argv + 2);
		_exit(127);
	}
	return 0;
}
`

var stamp struct {
	once sync.Once
	path string
	err  error
}

// stampBinary compiles stampSource once per run.
func stampBinary(b testing.TB) string {
	b.Helper()
	stamp.once.Do(func() {
		src := filepath.Join(bin.dir, "stamp.c")
		if stamp.err = os.WriteFile(src, []byte(stampSource), 0o644); stamp.err != nil {
			return
		}
		stamp.path = filepath.Join(bin.dir, "stamp")
		out, err := exec.Command("cc", "-O2", "-Wall", "-Werror", "-o", stamp.path, src).CombinedOutput()
		if err != nil {
			stamp.err = fmt.Errorf("cc: %w\n%s", err, out)
		}
	})
	if errors.Is(stamp.err, exec.ErrNotFound) {
		testpriv.Unavailable(b, "no C compiler (cc) for the benchmark's restart script")
	}
	if stamp.err != nil {
		b.Fatal(stamp.err)
	}
	return stamp.path
}

// killsPerRun is how many kills one benchmark iteration measures.
const killsPerRun = 200

// BenchmarkKillToRestart measures, with the ebpf backend, the time from
// kill(2) of a watched master to the first instruction of its restart
// script, both read on CLOCK_MONOTONIC; each kill waits for the service to
// be Up again before the next. The master is a copy of sleep(1), so that
// only pcheck's own work is measured. The bar: p99 under 10 ms.
func BenchmarkKillToRestart(b *testing.B) {
	testpriv.Root(b)
	script := stampBinary(b)
	sc := newScene(b)
	svc := filepath.Join(sc.dir, "svc")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		b.Fatal(err)
	}
	copyFile(b, sleep, svc)
	stamps := filepath.Join(sc.dir, "stamps")
	pf := filepath.Join(sc.dir, "svc.pfile")
	writeFile(b, pf, fmt.Sprintf(`process           %s
restart_script    %s %s %s infinity
restart_timeout   10
retry_count       1000000
grace             1
kill_timeout      1
`, svc, script, stamps, svc), 0o644)
	b.Cleanup(func() { killExe(svc) })

	p := startPcheck(b, sc.syslog, sc.dir, "ebpf", pf)
	// pcheck starts the service itself (start_on_load): Try to restart, Up.
	lines, err := p.lines(waitCtx(b), 2)
	if err != nil {
		b.Fatal(err)
	}
	master := upPID(b, lines[1], "svc")
	first := 2

	var samples []time.Duration
	b.ResetTimer()
	for range b.N {
		for range killsPerRun {
			killedAt := monotonic()
			if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
				b.Fatalf("kill %d: %v", master, err)
			}
			lines, err := p.lines(waitCtx(b), first+4)
			if err != nil {
				b.Fatal(err)
			}
			got := lines[first:]
			if got[0] != down("svc", master) || got[2] != tryRestart("svc") {
				b.Fatalf("after kill of %d pcheck logged %q", master, got)
			}
			master = upPID(b, got[3], "svc")
			first += 4
			samples = append(samples, lastStamp(b, stamps)-killedAt)
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(len(samples)), "kills")
	b.ReportMetric(percentile(samples, 50).Seconds()*1e3, "p50-ms")
	b.ReportMetric(percentile(samples, 99).Seconds()*1e3, "p99-ms")
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

// lastStamp is the last CLOCK_MONOTONIC time the restart script wrote.
func lastStamp(b testing.TB, path string) time.Duration {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	ns, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		b.Fatalf("stamp file %s: %v", path, err)
	}
	return time.Duration(ns)
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
