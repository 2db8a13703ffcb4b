package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownTimeout bounds how long Close waits for scrapes in flight.
const shutdownTimeout = 5 * time.Second

// Server is an HTTP listener for the metrics or health handler.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Listen binds addr (host:port; port 0 picks one) and serves h there until
// Close; logger (nil: none) hears of connection errors. Binding happens
// before it returns, so a taken port is an error at start-up, not a log
// line later.
func Listen(addr string, h http.Handler, logger *slog.Logger) (*Server, error) {
	logger = orDiscard(logger)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler: h,
			// Scrapers and load balancers are on the network: slow or
			// idle clients must not pile up connections in pcheck.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
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
