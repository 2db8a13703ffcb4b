// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// shutdownTimeout bounds how long Close waits for scrapes in flight.
const shutdownTimeout = 5 * time.Second

// DefaultMaxConns is how many connections one listener holds at most
// (pcheck's --http-max-conns).
const DefaultMaxConns = 64

// The timeouts of a connection: scrapers and load balancers are on the
// network, and slow or idle clients must not hold pcheck's connections.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
)

// Server is an HTTP listener for the metrics or health handler.
type Server struct {
	srv   *http.Server
	ln    net.Listener
	conns *connCap
	done  chan struct{}
}

// Listen binds addr (host:port; port 0 picks one) and serves h there until
// Close, holding at most maxConns connections (< 1: DefaultMaxConns);
// logger (nil: none) hears of connection errors. Binding happens before
// it returns, so a taken port is an error at start-up, not a log line
// later.
//
// Connections beyond maxConns wait in the kernel's accept queue, costing
// pcheck no file descriptor. So that clients which hold a connection
// without asking anything cannot keep the others waiting, a listener at
// its cap closes its longest idle connection (a keep-alive one between
// requests, else one that has sent nothing yet): only requests in
// progress, each bounded by the timeouts, hold a place.
func Listen(addr string, h http.Handler, logger *slog.Logger, maxConns int) (*Server, error) {
	logger = orDiscard(logger)
	if maxConns < 1 {
		maxConns = DefaultMaxConns
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ln:    ln,
		conns: newConnCap(ln, maxConns),
		done:  make(chan struct{}),
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         s.conns.changed,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.conns); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	return s, nil
}

// Addr is the address bound (with the port chosen for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening and waits, up to a few seconds, for requests in
// flight; then it drops them.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// connCap holds a listener to max connections: Accept waits for a free
// place before it takes a connection from the kernel's queue, and a place
// is freed when the http.Server is done with its connection (ConnState
// closed), after its file descriptor is closed. At the cap it closes the
// longest idle connection, so that the next client finds a place.
//
// netutil.LimitListener frees a place as soon as Close is called, before
// the descriptor's last user lets go of it, and does not hear of idle
// connections; hence this small one.
type connCap struct {
	net.Listener
	max    int
	places chan struct{} // one token per connection held
	done   chan struct{} // closed by Close: Accept stops waiting

	closeOnce sync.Once
	mu        sync.Mutex
	conns     map[net.Conn]connState
}

type connState struct {
	state http.ConnState
	since time.Time // of the last change
}

// newGrace is how long a new connection may send nothing before it counts
// as idle: a client sends its request as soon as it is connected, and one
// accepted a moment ago may have it waiting unread.
const newGrace = time.Second

func newConnCap(ln net.Listener, max int) *connCap {
	return &connCap{Listener: ln, max: max, places: make(chan struct{}, max), done: make(chan struct{}), conns: map[net.Conn]connState{}}
}

// Accept waits for a free place, then takes the next connection.
func (c *connCap) Accept() (net.Conn, error) {
	select {
	case c.places <- struct{}{}:
	case <-c.done:
		return nil, net.ErrClosed
	}
	conn, err := c.Listener.Accept()
	if err != nil {
		<-c.places
		return nil, err
	}
	return conn, nil
}

// Close stops listening.
func (c *connCap) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	return c.Listener.Close()
}

// changed is the http.Server's ConnState hook: it frees the place of a
// connection done with and, at the cap, closes the idlest one.
func (c *connCap) changed(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(c.conns, conn)
		c.mu.Unlock()
		<-c.places
		return
	}
	now := time.Now()
	c.conns[conn] = connState{state: st, since: now}
	var victim net.Conn
	if len(c.conns) >= c.max {
		victim = c.idlestLocked(now)
	}
	c.mu.Unlock()
	if victim != nil {
		victim.Close() // its place is freed once the server let go of it
	}
}

// idlestLocked is the keep-alive connection idle the longest, else the one
// that has sent nothing for the longest (past newGrace); nil when every
// one is busy.
func (c *connCap) idlestLocked(now time.Time) net.Conn {
	var best net.Conn
	var bestState connState
	for conn, s := range c.conns {
		switch {
		case s.state != http.StateIdle && (s.state != http.StateNew || now.Sub(s.since) < newGrace):
			continue
		case best == nil, s.state == http.StateIdle && bestState.state != http.StateIdle,
			s.state == bestState.state && s.since.Before(bestState.since):
			best, bestState = conn, s
		}
	}
	return best
}

// held is the number of connections open now.
func (c *connCap) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}
