// SPDX-License-Identifier: Apache-2.0

// Package probe runs the stall checks of a pfile's _bi_ blocks: the http,
// https and tcp probes, the tracker that turns failed probes into a stall
// after the block's duration, and the runner that probes on the block's own
// schedule.
package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// Prober probes one check's target. It is safe for concurrent use.
type Prober struct {
	check pfile.Check
	tls   *tls.Config // https only
}

// New builds the prober of check, loading its TLS CA bundle (if any) once.
func New(check pfile.Check) (*Prober, error) {
	p := &Prober{check: check}
	switch check.Kind {
	case pfile.KindHTTP, pfile.KindTCP:
	case pfile.KindHTTPS:
		cfg, err := tlsConfig(check)
		if err != nil {
			return nil, err
		}
		p.tls = cfg
	default:
		return nil, fmt.Errorf("probe: %s: unknown check kind %v", check.Block, check.Kind)
	}
	return p, nil
}

func tlsConfig(c pfile.Check) (*tls.Config, error) {
	name := c.TLSServerName
	if name == "" {
		name = c.Host
	}
	// Without tls_verify the probe asks "does the server answer", as the
	// original product did; a self-signed certificate must not fail it.
	cfg := &tls.Config{ServerName: name, InsecureSkipVerify: !c.TLSVerify}
	if c.TLSVerify && c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("probe: %s: tls_ca: %w", c.Block, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("probe: %s: tls_ca %s: no PEM certificate in it", c.Block, c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// StatusError is an HTTP response whose status is outside expect_status.
type StatusError struct {
	Status int
	Want   pfile.StatusRange
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP status %d, want %s", e.Status, e.Want)
}

// Probe probes the target once, bounded by the check's timeout (and ctx): nil
// means alive. The host name is resolved anew at each probe.
func (p *Prober) Probe(ctx context.Context) error {
	c := p.check
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	var d net.Dialer // resolves at each dial: no cache
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// The caller's cancellation, too, must unblock a read or write at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	switch c.Kind {
	case pfile.KindTCP:
		return nil
	case pfile.KindHTTPS:
		tc := tls.Client(conn, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return ctxErr(ctx, err)
		}
		conn = tc
	}
	status, err := head(conn, addr, c.Path)
	if err != nil {
		return ctxErr(ctx, err)
	}
	if !c.ExpectStatus.Contains(status) {
		return &StatusError{Status: status, Want: c.ExpectStatus}
	}
	return nil
}

// ctxErr names the probe's timeout or cancellation rather than the conn's
// deadline, which is set from ctx only (and may fire before ctx's own timer).
func ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// head sends HEAD path and reads the status line only: any HTTP response is
// a sign of life, its headers are not needed.
func head(conn net.Conn, hostPort, path string) (int, error) {
	if path == "" {
		path = "/"
	}
	req := "HEAD " + path + " HTTP/1.1\r\nHost: " + hostPort +
		"\r\nConnection: close\r\nUser-Agent: pwatch\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return 0, err
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, errors.New("status line too long")
		}
		return 0, fmt.Errorf("reading status line: %w", err)
	}
	return parseStatusLine(string(line))
}

// parseStatusLine reads "HTTP/x.y NNN reason" and returns NNN.
func parseStatusLine(line string) (int, error) {
	line = strings.TrimRight(line, "\r\n")
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !validProto(proto) || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, fmt.Errorf("not an HTTP status line: %q", line)
	}
	status, err := strconv.Atoi(rest[:3])
	if err != nil || status < 100 {
		return 0, fmt.Errorf("not an HTTP status line: %q", line)
	}
	return status, nil
}

func validProto(p string) bool {
	v, ok := strings.CutPrefix(p, "HTTP/")
	return ok && len(v) == 3 && v[1] == '.' && isDigit(v[0]) && isDigit(v[2])
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
