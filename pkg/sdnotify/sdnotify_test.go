// SPDX-License-Identifier: Apache-2.0

package sdnotify

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/internal/syncbuf"
)

const deadline = 10 * time.Second

// fakeSystemd listens where NOTIFY_SOCKET points, as systemd does.
func fakeSystemd(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// recv returns the next datagram.
func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(deadline))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

// expectNothing fails if a datagram is already waiting. Sending on a
// unixgram socket completes into the receiver's queue, so whatever was
// sent before this call is seen.
func expectNothing(t *testing.T, conn *net.UnixConn) {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now())
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("unexpected datagram %q", buf[:n])
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func TestNotifications(t *testing.T) {
	conn := fakeSystemd(t)
	for _, tc := range []struct {
		send func() error
		want string
	}{
		{Ready, "READY=1"},
		{func() error { return Status("watching 2 services\nof 3") }, "STATUS=watching 2 services of 3"},
		{Stopping, "STOPPING=1"},
	} {
		if err := tc.send(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, conn); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}

	before := monotonicUsec(t)
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	after := monotonicUsec(t)
	got := recv(t, conn)
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC=", got)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC %q not within [%d, %d] (%v)", lines[1], before, after, err)
	}
	expectNothing(t, conn)
}

func TestWithoutSystemdEverythingIsANoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	os.Unsetenv("NOTIFY_SOCKET") // t.Setenv restores them afterwards
	os.Unsetenv("WATCHDOG_USEC")
	for _, f := range []func() error{Ready, Stopping, Reloading, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v", err)
		}
	}
	returnsAtOnce(t, func() error { return Watchdog(context.Background(), nil, slog.Default()) })
}

func TestSystemdGoneIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Ready(); err == nil {
		t.Fatal("Ready to a socket nobody listens on: no error")
	}
}

// returnsAtOnce runs f, which must return nil without waiting for anything.
func returnsAtOnce(t *testing.T, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v, want nil", err)
		}
	case <-time.After(deadline):
		t.Fatal("did not return")
	}
}

func watchdogEnv(t *testing.T, usec string, pid int) {
	t.Setenv("WATCHDOG_USEC", usec)
	t.Setenv("WATCHDOG_PID", strconv.Itoa(pid))
}

func TestWatchdogPings(t *testing.T) {
	conn := fakeSystemd(t)
	watchdogEnv(t, "100000", os.Getpid()) // 100 ms: pings every 50 ms
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, nil, slog.Default()) }()
	for range 3 {
		if got := recv(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(deadline):
		t.Fatal("Watchdog did not return after its context ended")
	}
}

func TestWatchdogWithheldWhileUnhealthy(t *testing.T) {
	conn := fakeSystemd(t)
	watchdogEnv(t, "40000", os.Getpid())
	var alive atomic.Bool
	calls := make(chan bool, 1000)
	healthy := func() bool {
		v := alive.Load()
		select {
		case calls <- v:
		default:
		}
		return v
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, healthy, slog.New(slog.NewTextHandler(&logs, nil))) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	defer stop()

	// Three ticks judged unhealthy: no ping at all.
	for range 3 {
		select {
		case <-calls:
		case <-time.After(deadline):
			t.Fatal("healthy was not asked")
		}
	}
	expectNothing(t, conn)

	// Alive again: pings resume.
	alive.Store(true)
	if got := recv(t, conn); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", got)
	}
	stop()
	out := logs.String()
	if n := strings.Count(out, "watchdog pings withheld"); n != 1 {
		t.Errorf("withheld logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "watchdog pings resumed") {
		t.Errorf("resume not logged:\n%s", out)
	}
}

func TestWatchdogMeantForAnotherProcess(t *testing.T) {
	conn := fakeSystemd(t)
	watchdogEnv(t, "40000", os.Getpid()+1) // a parent's settings, inherited
	returnsAtOnce(t, func() error { return Watchdog(context.Background(), nil, slog.Default()) })
	expectNothing(t, conn)
}

func TestWatchdogMalformed(t *testing.T) {
	fakeSystemd(t)
	watchdogEnv(t, "soon", os.Getpid())
	if err := Watchdog(context.Background(), nil, slog.Default()); err == nil {
		t.Fatal("WATCHDOG_USEC=soon: no error")
	}
}

// syncBuffer is written concurrently while the test reads it.
type syncBuffer = syncbuf.Buffer
