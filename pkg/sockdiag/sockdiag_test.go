// SPDX-License-Identifier: Apache-2.0

package sockdiag

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/vishvananda/netlink/nl"

	"golang.org/x/sys/unix"
)

// The test binary doubles as another process: with childEnv=listen it
// holds a listener of its own (prints its port); with childEnv=connect it
// opens connections for the benchmark (see connectChild). Either waits for
// its stdin to close, then exits.
const childEnv = "SOCKDIAG_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "listen":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "listen-any": // in a network namespace of its own, lo down
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "connect":
		os.Exit(connectChild())
	}
	os.Exit(m.Run())
}

// startChild runs the test binary in mode with extra descriptors; it ends
// when the test does. It returns the child's first line of output.
func startChild(tb testing.TB, mode string, files ...*os.File) (*exec.Cmd, string) {
	tb.Helper()
	return startChildWith(tb, mode, nil, files...)
}

func startChildWith(tb testing.TB, mode string, attr *syscall.SysProcAttr, files ...*os.File) (*exec.Cmd, string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("child %s: %v", mode, err)
	}
	return cmd, strings.TrimSpace(line)
}

func listen(t *testing.T, network, addr string) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// inodeOf reads the inode of a socket through its descriptor.
func inodeOf(t *testing.T, ln net.Listener) uint64 {
	t.Helper()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return st.Ino
}

func TestListenersFindsOursWithItsInode(t *testing.T) {
	ln, port := listen(t, "tcp4", "127.0.0.1:0")
	_, otherPort := listen(t, "tcp4", "127.0.0.1:0")

	ls, err := Listeners(port)
	if err != nil {
		t.Fatal(err)
	}
	want := Listener{Inode: inodeOf(t, ln), Addr: netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port)),
		Backlog: somaxconn(t)}
	if len(ls) != 1 || ls[0] != want {
		t.Fatalf("Listeners(%d) = %+v, want [%+v] (the listener on %d must not appear)", port, ls, want, otherPort)
	}
}

func TestListenersIPv6(t *testing.T) {
	ln, port := listen(t, "tcp6", "[::1]:0")
	ls, err := Listeners(port)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Inode != inodeOf(t, ln) || ls[0].Addr != netip.MustParseAddrPort(fmt.Sprintf("[::1]:%d", port)) {
		t.Fatalf("Listeners(%d) = %+v, want the ::1 listener", port, ls)
	}
}

// Established connections on the port, both the accepted side (whose local
// port is the listener's) and the client side, are not LISTEN sockets.
func TestListenersOnlyListen(t *testing.T) {
	ln, port := listen(t, "tcp4", "127.0.0.1:0")
	for range 3 {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	ls, err := Listeners(port)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Inode != inodeOf(t, ln) {
		t.Fatalf("Listeners(%d) = %+v, want the listener alone", port, ls)
	}
	// The same request over every state does see the accepted sockets: the
	// state filter is what leaves them out.
	all, err := dump(uint16(port), statesAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("all-states dump of port %d: %d sockets, want 4 (listener + 3 accepted)", port, len(all))
	}
}

func TestListenersRejectsBadPort(t *testing.T) {
	for _, p := range []int{0, -1, 65536} {
		if _, err := Listeners(p); err == nil {
			t.Errorf("port %d accepted", p)
		}
	}
}

func TestCheckOwnedByUs(t *testing.T) {
	ln, port := listen(t, "tcp4", "127.0.0.1:0")
	r, err := Check(port, []int{os.Getpid()})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	l, ok := r.Fullest()
	if !ok || l.Inode != inodeOf(t, ln) || len(r.Foreign) != 0 {
		t.Fatalf("Result = %+v", r)
	}
	if l.Fill() != 0 {
		t.Fatalf("fill of an idle listener = %v", l.Fill())
	}
}

func TestCheckAnotherProcessListenerNotOwned(t *testing.T) {
	cmd, line := startChild(t, "listen")
	port, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("child said %q", line)
	}

	r, err := Check(port, []int{os.Getpid()})
	if !errors.Is(err, ErrNotOwned) || len(r.Foreign) != 1 || len(r.Owned) != 0 {
		t.Fatalf("our pid against the child's listener: %+v, %v; want ErrNotOwned", r, err)
	}
	// The pids named are ours, not the listener's, and the text says so.
	want := fmt.Sprintf("port %d: %v (1 listener, held by another process; the service's pids: %d)", port, ErrNotOwned, os.Getpid())
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// Listed with the child's pid (and a pid that is gone), it is owned.
	if _, err := Check(port, []int{goneP(t), cmd.Process.Pid}); err != nil {
		t.Fatalf("the child's own pid: %v", err)
	}
}

func TestCheckClosedListener(t *testing.T) {
	ln, port := listen(t, "tcp4", "127.0.0.1:0")
	if _, err := Check(port, []int{os.Getpid()}); err != nil {
		t.Fatalf("before close: %v", err)
	}
	ln.Close()
	if _, err := Check(port, []int{os.Getpid()}); !errors.Is(err, ErrNoListener) {
		t.Fatalf("after close: %v, want ErrNoListener", err)
	}
}

// A listener with backlog 2 takes three connections into its accept queue
// (the kernel's limit is backlog+1); the third makes it full.
func TestCheckAcceptQueueFull(t *testing.T) {
	const backlog = 2
	fd, port := rawListen(t, backlog)

	var clients []net.Conn
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	connect := func() {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	pids := []int{os.Getpid()}

	for range backlog {
		connect()
	}
	at := waitQueue(t, port, backlog)
	if err := checkErr(port, pids); err != nil {
		t.Fatalf("queue at its backlog (%+v): %v, want not full yet", at, err)
	}
	connect()
	waitQueue(t, port, backlog+1)
	r, err := Check(port, pids)
	if !errors.Is(err, ErrAcceptQueueFull) {
		t.Fatalf("queue past its backlog: %v, want ErrAcceptQueueFull", err)
	}
	l, _ := r.Fullest()
	if l.AcceptQueue != backlog+1 || l.Backlog != backlog || l.Fill() != 1.5 {
		t.Fatalf("full listener = %+v (fill %v)", l, l.Fill())
	}

	// Accepting one brings it back.
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
	waitQueue(t, port, backlog)
	if err := checkErr(port, pids); err != nil {
		t.Fatalf("after one accept: %v", err)
	}
}

func TestSocketInodes(t *testing.T) {
	ln, _ := listen(t, "tcp4", "127.0.0.1:0")
	got, err := SocketInodes("/proc", []int{os.Getpid(), goneP(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !got[inodeOf(t, ln)] {
		t.Fatalf("our listener's inode %d not among %d socket inodes", inodeOf(t, ln), len(got))
	}

	// A fixture: non-socket links and a process directory without fd/.
	root := t.TempDir()
	fdDir := filepath.Join(root, "42", "fd")
	os.MkdirAll(fdDir, 0o755)
	for name, target := range map[string]string{"0": "/dev/null", "3": "socket:[777]", "4": "pipe:[5]", "5": "socket:[bad]"} {
		if err := os.Symlink(target, filepath.Join(fdDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "43"), 0o755)
	got, err = SocketInodes(root, []int{42, 43, 44})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[777] {
		t.Fatalf("fixture: %v, want {777}", got)
	}
}

// rawListen listens on 127.0.0.1 with the given backlog (net.Listen always
// asks for somaxconn) and never accepts unless the test does.
func rawListen(t *testing.T, backlog int) (fd, port int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port
}

// waitQueue waits until the listener on port has n connections waiting:
// the client's connect returns before the server side has queued it.
func waitQueue(t *testing.T, port int, n uint32) Listener {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls, err := Listeners(port)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 1 && ls[0].AcceptQueue == n {
			return ls[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept queue of port %d never reached %d: %+v", port, n, ls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkErr(port int, pids []int) error {
	_, err := Check(port, pids)
	return err
}

// goneP is the pid of a process that has exited and been reaped.
func goneP(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func somaxconn(t *testing.T) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// A server in a network namespace of its own binds its port there: it is
// found, and owned, by asking sock_diag inside that namespace; pcheck's
// own namespace has no such listener (the old check failed it).
func TestCheckListenerInAnotherNetworkNamespace(t *testing.T) {
	testpriv.Root(t)
	cmd, line := startChildWith(t, "listen-any", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	port, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	pid := cmd.Process.Pid
	here, err := Listeners(port)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range here {
		if l.Addr.Port() == uint16(port) && l.Addr.Addr().IsUnspecified() {
			t.Skipf("port %d happens to be taken here too: %+v", port, l)
		}
	}
	r, err := Check(port, []int{pid})
	if err != nil || len(r.Owned) != 1 || r.Owned[0].Addr.Port() != uint16(port) {
		t.Fatalf("Check in the child's namespace: %+v, %v; want its listener, owned", r, err)
	}
	// Another pid's listener in that namespace is not the service's.
	if _, err := Check(port, []int{pid, os.Getpid()}); err != nil {
		t.Fatalf("the child with us beside it: %v", err)
	}
}

// Where the namespace cannot be entered, the check is skipped, never
// failed: the error wraps ErrSkipped (the caller passes the round).
func TestCheckSkippedWhenTheNamespaceCannotBeEntered(t *testing.T) {
	testpriv.Root(t)
	cmd, line := startChildWith(t, "listen-any", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	port, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	real := openIn
	openIn = func(int) (*nl.NetlinkSocket, error) { return nil, syscall.EPERM }
	t.Cleanup(func() { openIn = real })
	_, err = Check(port, []int{cmd.Process.Pid})
	if !errors.Is(err, ErrSkipped) {
		t.Fatalf("err %v, want ErrSkipped", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("err %q does not name the pid", err)
	}
}
