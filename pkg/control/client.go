// SPDX-License-Identifier: Apache-2.0

package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultSocket is where pcheck listens unless told otherwise.
const DefaultSocket = "/run/pwatch/pcheck.sock"

// callTimeout bounds a call whose ctx has no deadline: a pcheck that
// accepts but never answers must not hang padmin.
const callTimeout = 60 * time.Second

// UnreachableError says no pcheck answers at Path.
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach pcheck at %s: is it running? (%v)", e.Path, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// PermissionDenied is the error of a padmin that is not root, whether the
// socket's mode or the server's peer check stopped it.
func PermissionDenied(uid int) error {
	return fmt.Errorf("permission denied: padmin must run as root (uid %d)", uid)
}

// Call sends req to the pcheck listening at path and returns its answer. A
// Response with Error set comes back as an error too.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	conn, err := dial(ctx, path)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	// A server that refuses a peer answers and hangs up without reading the
	// request, so a failed send may still have an answer waiting: read it.
	sendErr := json.NewEncoder(conn).Encode(req)
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		switch {
		case sendErr != nil:
			err = sendErr
		case errors.Is(err, io.EOF):
			err = errors.New("pcheck closed the connection without answering")
		}
		return Response{}, callError(ctx, path, err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// dial connects to the pcheck at path, and checks it is pcheck.
func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("%w: %v", PermissionDenied(os.Getuid()), err)
	case err != nil:
		return nil, &UnreachableError{Path: path, Err: err}
	}
	conn := c.(*net.UnixConn)
	if err := checkServer(conn, path); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// checkServer refuses a server that is not pcheck: the one listening must
// be root (or this padmin's own uid, as pcheck run by hand in tests). A
// socket path in a directory others can create names in (a sticky /tmp
// passes the trust rule) could be bound first by anyone, who would then
// hear root's commands and answer them.
func checkServer(conn *net.UnixConn, path string) error {
	uid, pid, err := peer(conn)
	if err != nil {
		return fmt.Errorf("control socket %s: cannot check who serves it: %w", path, err)
	}
	if uid != 0 && int(uid) != os.Geteuid() {
		return fmt.Errorf("control socket %s is served by uid %d (pid %d), not root: not pcheck; padmin does not talk to it", path, uid, pid)
	}
	return nil
}

func callError(ctx context.Context, path string, err error) error {
	var op *net.OpError
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case errors.As(err, &op):
		err = op.Err // its addresses name the server's temporary bind name
	}
	return fmt.Errorf("talking to pcheck at %s: %w", path, err)
}

// Client calls one pcheck with typed commands.
type Client struct {
	// Path is the control socket; "" is DefaultSocket.
	Path string
}

func (c Client) call(ctx context.Context, req Request) (Response, error) {
	return Call(ctx, c.path(), req)
}

func (c Client) path() string {
	if c.Path == "" {
		return DefaultSocket
	}
	return c.Path
}

// Status of one service, or all when name is "".
func (c Client) Status(ctx context.Context, name string) ([]ServiceStatus, error) {
	resp, err := c.call(ctx, Request{Command: CommandStatus, Name: name})
	return resp.Services, err
}

// Rules in effect for one service, or all, as JSON.
func (c Client) Rules(ctx context.Context, name string) (json.RawMessage, error) {
	resp, err := c.call(ctx, Request{Command: CommandRules, Name: name})
	return resp.Rules, err
}

// Stop pauses watching name.
func (c Client) Stop(ctx context.Context, name string) error {
	_, err := c.call(ctx, Request{Command: CommandStop, Name: name})
	return err
}

// Start resumes watching name.
func (c Client) Start(ctx context.Context, name string) error {
	_, err := c.call(ctx, Request{Command: CommandStart, Name: name})
	return err
}

// Reload re-reads one pfile, or all. When pcheck re-read them and refused
// the new rules the error is a *ReloadRefusedError, one error per problem;
// any other error means the reload was not carried out at all.
func (c Client) Reload(ctx context.Context, name string) error {
	resp, err := c.call(ctx, Request{Command: CommandReload, Name: name})
	if err != nil {
		return err
	}
	if len(resp.ReloadErrors) == 0 {
		return nil
	}
	errs := make([]error, len(resp.ReloadErrors))
	for i, e := range resp.ReloadErrors {
		errs[i] = errors.New(e)
	}
	return &ReloadRefusedError{Errs: errs}
}

// ReloadRefusedError is a reload pcheck carried out and refused: it read
// the pfiles, found these problems, and kept the running rules.
type ReloadRefusedError struct{ Errs []error }

func (e *ReloadRefusedError) Error() string { return errors.Join(e.Errs...).Error() }

// Unwrap gives the problems one by one.
func (e *ReloadRefusedError) Unwrap() []error { return e.Errs }

// RebootCount reports the reboot guard, clearing it first if reset.
func (c Client) RebootCount(ctx context.Context, reset bool) (RebootCount, error) {
	resp, err := c.call(ctx, Request{Command: CommandRebootCount, Reset: reset})
	if err != nil {
		return RebootCount{}, err
	}
	if resp.Reboots == nil {
		return RebootCount{}, errors.New("pcheck sent no reboot count")
	}
	return *resp.Reboots, nil
}
