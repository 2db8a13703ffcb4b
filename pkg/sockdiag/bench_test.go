// SPDX-License-Identifier: Apache-2.0

package sockdiag

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// established is how many loopback connections the benchmark opens: each is
// two established sockets (client and accepted), 2*established in all.
const established = 20000

// BenchmarkListenCheck measures, in one run, the LISTEN query on a port with
// no established connections on the host and with 20,000 established
// loopback connections to that very port, and reports the ratio (the bar:
// under 1.5). For contrast it measures the same on two queries without the
// state filter: the same request over every state (port in the id), and
// vishvananda/netlink's full TCP dump (SocketDiagTCPInfo, both families).
// Run with -benchtime 1x: the setup dominates, b.N is not used.
func BenchmarkListenCheck(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	listen := func() error {
		ls, err := Listeners(port)
		if err == nil && len(ls) != 1 {
			err = fmt.Errorf("%d listeners on port %d, want 1", len(ls), port)
		}
		return err
	}
	allStates := func() error { _, err := dump(uint16(port), statesAll); return err }
	fullDump := func() error {
		for _, f := range []uint8{unix.AF_INET, unix.AF_INET6} {
			if _, err := netlink.SocketDiagTCPInfo(f); err != nil {
				return err
			}
		}
		return nil
	}

	b.ResetTimer()
	listen0 := median(b, listen)
	all0 := median(b, allStates)
	full0 := median(b, fullDump)

	b.StopTimer()
	connect(b, ln, established)
	if all, err := dump(uint16(port), statesAll); err != nil || len(all) < established+1 {
		b.Fatalf("after connecting: %d sockets on port %d (%v), want the listener and %d accepted", len(all), port, err, established)
	}
	b.StartTimer()

	listenN := median(b, listen)
	allN := median(b, allStates)
	fullN := median(b, fullDump)
	b.StopTimer()

	b.ReportMetric(float64(listenN.Nanoseconds()), "ns/op")
	b.ReportMetric(float64(listen0.Nanoseconds()), "listen-0-ns")
	b.ReportMetric(float64(listenN.Nanoseconds()), "listen-20k-ns")
	b.ReportMetric(ratio(listenN, listen0), "ratio")
	b.ReportMetric(ratio(allN, all0), "allstates-ratio")
	b.ReportMetric(float64(full0.Nanoseconds()), "fulldump-0-ns")
	b.ReportMetric(float64(fullN.Nanoseconds()), "fulldump-20k-ns")
	b.ReportMetric(ratio(fullN, full0), "fulldump-ratio")
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// median runs f for about a second (10 to 1000 times) and returns the
// median duration of one call.
func median(b *testing.B, f func() error) time.Duration {
	b.Helper()
	var ds []time.Duration
	start := time.Now()
	for len(ds) < 10 || (time.Since(start) < time.Second && len(ds) < 1000) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// connect opens n loopback connections to ln, all accepted, held by child
// processes (a process here may not hold the 2n descriptors: the hard
// RLIMIT_NOFILE is 20,000 in places, raising it needs CAP_SYS_RESOURCE).
// The connections end with the test, reset (no TIME_WAIT left behind).
func connect(b *testing.B, ln net.Listener, n int) {
	b.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for left := n; left > 0; left -= perChild {
		k := min(left, perChild)
		b.Setenv(connsEnv, strconv.Itoa(k))
		if _, line := startChild(b, "connect", f); line != "ready" {
			b.Fatalf("child opening %d connections: %s", k, line)
		}
	}
}

const (
	// perChild connections take 2*perChild descriptors in one child.
	perChild = 5000
	connsEnv = "SOCKDIAG_TEST_CONNS"
)

// connectChild is the child side of connect: it dials the listener
// inherited as descriptor 3 and accepts from it, one connection at a time
// (any child may accept any child's connection, but every child dials
// before it accepts, so an accept always has one waiting).
func connectChild() int {
	n, err := strconv.Atoi(os.Getenv(connsEnv))
	if err != nil {
		fmt.Println("bad", connsEnv, err)
		return 1
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	conns := make([]*net.TCPConn, 0, 2*n)
	defer func() {
		for _, c := range conns {
			c.SetLinger(0)
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			fmt.Printf("error after %d: %v\n", len(conns)/2, err)
			return 1
		}
		s, err := ln.Accept()
		if err != nil {
			fmt.Printf("error after %d: %v\n", len(conns)/2, err)
			return 1
		}
		conns = append(conns, c.(*net.TCPConn), s.(*net.TCPConn))
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}
