// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// okHandler answers every request "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })

// keepAlive opens a connection, makes one request on it and leaves it
// open and idle, as a keep-alive client between requests does. The
// answer is not awaited: beyond the cap it comes only once admitted.
func keepAlive(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// answered reads one response from c.
func answered(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// sockets reads the kernel's TCP table for port: how many of its
// connections a process accepted (they have an inode, so a file
// descriptor) and how many wait in the listener's accept queue (the
// LISTEN entry's rx_queue). Meaningful while nothing changes: the table is
// read in pieces.
func sockets(t *testing.T, port int) (accepted, queued int) {
	t.Helper()
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, local, _ := strings.Cut(f[1], ":")
			if p, _ := strconv.ParseInt(local, 16, 32); int(p) != port {
				continue
			}
			switch {
			case f[3] == "0A": // LISTEN: tx_queue:rx_queue
				_, rx, _ := strings.Cut(f[4], ":")
				n, _ := strconv.ParseInt(rx, 16, 32)
				queued += int(n)
			case f[3] == "01" && f[9] != "0":
				accepted++
			}
		}
	}
	return accepted, queued
}

// Clients beyond the cap wait in the kernel's accept queue, without a file
// descriptor in the server: with the cap's worth of requests in progress,
// exactly that many connections are accepted and the rest queued; all are
// served once the first ones finish.
func TestListenerCapQueuesTheRest(t *testing.T) {
	const limit, clients = 8, 50
	release := make(chan struct{})
	var running sync.WaitGroup
	running.Add(limit)
	var inHandler atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if inHandler.Add(1) <= limit {
			running.Done()
		}
		<-release
		io.WriteString(w, "ok\n")
	})
	s, err := Listen("127.0.0.1:0", h, nil, limit)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	port := s.Addr().(*net.TCPAddr).Port
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = keepAlive(t, s.Addr().String())
	}
	running.Wait()
	deadline := time.Now().Add(10 * time.Second)
	var accepted, queued int
	for time.Now().Before(deadline) {
		if accepted, queued = sockets(t, port); queued == clients-limit {
			break
		}
		time.Sleep(10 * time.Millisecond) // the last SYNs are still being answered
	}
	if accepted != limit || queued != clients-limit || inHandler.Load() != limit {
		t.Errorf("%d clients, cap %d: %d accepted, %d queued, %d in the handler; want %d, %d, %d",
			clients, limit, accepted, queued, inHandler.Load(), limit, clients-limit, limit)
	}
	close(release)
	for i, c := range conns {
		if err := answered(c, 30*time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
}

// Many more keep-alive clients than the cap: the server never holds more
// connections than the cap, every client is served in turn as the idle
// ones are closed to make room, and a fresh client is answered at once,
// not after the idle timeout.
func TestListenerCapsConnections(t *testing.T) {
	const limit, clients = 8, 300
	s, err := Listen("127.0.0.1:0", okHandler, nil, limit)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr().String()

	stop := make(chan struct{})
	most := 0
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			most = max(most, s.conns.held())
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	})
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = keepAlive(t, addr)
	}
	served := 0
	for _, c := range conns {
		if answered(c, 30*time.Second) == nil {
			served++
		}
	}
	fresh := keepAlive(t, addr)
	start := time.Now()
	err = answered(fresh, 10*time.Second)
	took := time.Since(start)
	close(stop)
	sampler.Wait()
	if err != nil || took > 5*time.Second {
		t.Errorf("a fresh client beside %d idle ones: %v after %v", clients, err, took)
	}
	if served != clients {
		t.Errorf("%d of %d waiting clients were served", served, clients)
	}
	if most > limit {
		t.Errorf("the server held %d connections at once, cap %d", most, limit)
	}
	t.Logf("%d clients, cap %d: at most %d accepted at once; the fresh one answered in %v", clients, limit, most, took)
}

// Requests in progress keep their places: the cap closes only idle
// connections, never one a client is being served on.
func TestListenerCapSparesBusyConnections(t *testing.T) {
	release := make(chan struct{})
	var busy sync.WaitGroup
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			busy.Done()
			<-release
		}
		io.WriteString(w, "ok\n")
	})
	s, err := Listen("127.0.0.1:0", slow, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer close(release)
	var slowConns []net.Conn
	busy.Add(2)
	for range 2 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		slowConns = append(slowConns, c)
	}
	busy.Wait()
	for range 5 { // each fills the third place, then yields it to the next
		if err := answered(keepAlive(t, s.Addr().String()), 10*time.Second); err != nil {
			t.Fatalf("beside two busy connections: %v", err)
		}
	}
	release <- struct{}{}
	release <- struct{}{}
	for _, c := range slowConns {
		if err := answered(c, 10*time.Second); err != nil {
			t.Errorf("a busy connection was cut: %v", err)
		}
	}
}
