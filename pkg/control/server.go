// SPDX-License-Identifier: Apache-2.0

package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwatch/pwatch/pkg/trust"
)

// Handler carries out padmin's commands; pcheck's daemon implements it.
// Calls may come concurrently. ctx ends when the server closes or when the
// client hangs up: a command whose ctx has ended before it was accepted
// must not run.
type Handler interface {
	// Status of one service, or of all when name is "".
	Status(ctx context.Context, name string) ([]ServiceStatus, error)
	// Rules in effect for one service, or all, as JSON.
	Rules(ctx context.Context, name string) (json.RawMessage, error)
	// Stop pauses watching name; its processes are left alone.
	Stop(ctx context.Context, name string) error
	// Start resumes watching name with its counters reset.
	Start(ctx context.Context, name string) error
	// Reload re-reads the pfiles (applying one service's, or all); it
	// returns every error found, and then nothing was applied.
	Reload(ctx context.Context, name string) []error
	// RebootCount reports the reboot guard, clearing it first if reset.
	RebootCount(ctx context.Context, reset bool) (RebootCount, error)
}

// How long a client may take to send its request, and to read the answer.
const ioTimeout = 10 * time.Second

// maxRequest bounds what a client can make the server read.
const maxRequest = 64 << 10

// Server answers padmin on a Unix socket.
type Server struct {
	path     string
	ln       *net.UnixListener
	handler  Handler
	log      *slog.Logger
	identity os.FileInfo // of our socket file, so Close removes only ours

	ctx       context.Context
	cancel    context.CancelFunc
	conns     sync.WaitGroup
	closeOnce sync.Once
}

// Listen opens the control socket at path and serves it until Close. It
// creates the parent directory (0755) and refuses one that others than
// root could write (pkg/trust: a sticky directory of root's passes), since
// whoever can write it could put their own socket or a symlink in place
// of pcheck's. It replaces a stale socket left by a pcheck that died, but
// refuses to steal the socket of a pcheck that still answers. The socket
// is mode 0600 from the moment it has its name; every connection's peer
// must also be uid 0 (SO_PEERCRED), which is the check that counts.
func Listen(path string, h Handler, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	tc := trust.New()
	tc.Dir(dir, "pcheck's control socket")
	if err := tc.Take().Err(); err != nil {
		return nil, fmt.Errorf("control socket %s: refused: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	identity, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{path: path, ln: ln, handler: h, log: logger.With("socket", path),
		identity: identity, ctx: ctx, cancel: cancel}
	s.conns.Go(s.accept)
	return s, nil
}

// removeStale removes a socket file nobody listens on any more.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s exists and is not a socket; not removing it", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: another pcheck is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: cannot tell whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: removing stale socket: %w", err)
	}
	return nil
}

// listenPrivate binds a socket made 0600 before it has a name (bind gives
// the file the mode of the unbound socket's inode, less the umask), so
// that the socket is never reachable with a wider mode and no chmod by
// name, which a symlink could redirect, is needed. bind never follows a
// symlink: a name taken in the meantime fails it.
func listenPrivate(path string) (*net.UnixListener, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileListener holds a copy
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return nil, os.NewSyscallError("fchmod", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		os.Remove(path)
		return nil, os.NewSyscallError("listen", err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	ln := l.(*net.UnixListener)
	ln.SetUnlinkOnClose(false) // Close removes path itself, if still ours
	return ln, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops accepting, cancels the commands in progress, waits for them
// and removes the socket (unless another pcheck has put its own there).
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.conns.Wait()
		if fi, statErr := os.Lstat(s.path); statErr == nil && os.SameFile(fi, s.identity) {
			os.Remove(s.path)
		}
	})
	return err
}

func (s *Server) accept() {
	for {
		conn, err := s.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE and friends: say so and go on, without spinning.
			s.log.Warn("control socket accept failed", "error", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.conns.Go(func() { s.serve(conn) })
	}
}

func (s *Server) serve(conn *net.UnixConn) {
	defer conn.Close()
	uid, pid, err := peer(conn)
	if err != nil {
		s.log.Warn("control connection: cannot read peer credentials", "error", err)
		s.reply(conn, Response{Error: "cannot check your credentials: " + err.Error()})
		return
	}
	if uid != 0 {
		s.log.Warn("control connection refused: not root", "uid", uid, "peer_pid", pid)
		s.reply(conn, Response{Error: PermissionDenied(int(uid)).Error()})
		return
	}
	conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var req Request
	if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&req); err != nil {
		s.reply(conn, Response{Error: "bad request: " + err.Error()})
		return
	}
	ctx, cancel := s.whileConnected(conn)
	defer cancel()
	if req.Command == CommandEvents && req.Follow {
		s.follow(ctx, conn, req, pid)
		return
	}
	s.reply(conn, s.dispatch(ctx, req))
}

// whileConnected is a context that ends when the client hangs up (or the
// server closes): padmin sends one request and then only waits, so any
// read ending means it has gone, and nothing is to be done on its behalf.
func (s *Server) whileConnected(conn *net.UnixConn) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(s.ctx)
	conn.SetReadDeadline(time.Time{})
	go func() {
		var b [1]byte
		conn.Read(b[:]) // EOF, an error, or bytes no client should send
		cancel()
	}()
	return ctx, cancel
}

func peer(conn *net.UnixConn) (uid uint32, pid int32, err error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if credErr != nil {
		return 0, 0, credErr
	}
	return cred.Uid, cred.Pid, nil
}

func (s *Server) dispatch(ctx context.Context, req Request) Response {
	if err := ctx.Err(); err != nil {
		return Response{Error: "not done: " + err.Error()}
	}
	var resp Response
	var err error
	switch req.Command {
	case CommandStatus:
		resp.Services, err = s.handler.Status(ctx, req.Name)
		for i := range resp.Services {
			if resp.Services[i].PIDs == nil {
				resp.Services[i].PIDs = []int{} // [] in JSON, not null
			}
		}
	case CommandRules:
		resp.Rules, err = s.handler.Rules(ctx, req.Name)
	case CommandStop, CommandStart:
		if req.Name == "" {
			err = fmt.Errorf("%s needs a service name", req.Command)
		} else if req.Command == CommandStop {
			err = s.handler.Stop(ctx, req.Name)
		} else {
			err = s.handler.Start(ctx, req.Name)
		}
	case CommandReload:
		for _, e := range s.handler.Reload(ctx, req.Name) {
			if e != nil {
				resp.ReloadErrors = append(resp.ReloadErrors, e.Error())
			}
		}
	case CommandRebootCount:
		var rc RebootCount
		if rc, err = s.handler.RebootCount(ctx, req.Reset); err == nil {
			resp.Reboots = &rc
		}
	default:
		var known bool
		if resp, known, err = s.dispatchHistory(ctx, req); !known {
			err = fmt.Errorf("unknown command %q", req.Command)
		}
	}
	if err != nil {
		return Response{Error: err.Error()}
	}
	return resp
}

func (s *Server) reply(conn *net.UnixConn, resp Response) {
	conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug("control connection: answer not delivered", "error", err)
	}
}
