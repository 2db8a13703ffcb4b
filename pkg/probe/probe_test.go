// SPDX-License-Identifier: Apache-2.0

package probe

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// checkFor is a check of kind against the server at addr ("host:port").
func checkFor(t *testing.T, kind pfile.Kind, addr string) pfile.Check {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	c := pfile.Check{Kind: kind, Block: "_bi_test", Host: host, Port: p, Timeout: 10 * time.Second,
		Interval: time.Minute, Duration: 10 * time.Minute}
	if kind != pfile.KindTCP {
		c.Path = "/"
	}
	if kind == pfile.KindHTTPS {
		c.TLSServerName = host
	}
	return c
}

func probeOnce(t *testing.T, c pfile.Check) error {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p.Probe(context.Background())
}

func TestHTTPProbeSendsHEADWithHost(t *testing.T) {
	type seen struct{ method, path, host, agent string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.URL.RequestURI(), r.Host, r.UserAgent()}
	}))
	defer srv.Close()

	c := checkFor(t, pfile.KindHTTP, srv.Listener.Addr().String())
	c.Path = "/health?x=1"
	if err := probeOnce(t, c); err != nil {
		t.Fatalf("probe of a live server: %v", err)
	}
	want := seen{"HEAD", "/health?x=1", srv.Listener.Addr().String(), "pwatch"}
	if s := <-got; s != want {
		t.Fatalf("server saw %+v, want %+v", s, want)
	}
}

func TestHTTPProbeExpectStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		want pfile.StatusRange
		ok   bool
	}{
		{pfile.StatusRange{}, true}, // any response is alive
		{pfile.StatusRange{Min: 200, Max: 399}, false},
		{pfile.StatusRange{Min: 500, Max: 599}, true},
		{pfile.StatusRange{Min: 503, Max: 503}, true},
		{pfile.StatusRange{Min: 504, Max: 504}, false},
	} {
		c := checkFor(t, pfile.KindHTTP, srv.Listener.Addr().String())
		c.ExpectStatus = tc.want
		err := probeOnce(t, c)
		if (err == nil) != tc.ok {
			t.Errorf("expect_status %v against 503: err = %v, want ok=%v", tc.want, err, tc.ok)
		}
		var se *StatusError
		if err != nil && (!errors.As(err, &se) || se.Status != 503) {
			t.Errorf("expect_status %v: err = %v, want a StatusError for 503", tc.want, err)
		}
	}
}

func TestHTTPProbeRejectsWhatIsNotHTTP(t *testing.T) {
	for name, reply := range map[string]string{
		"garbage":        "hello there\n",
		"closed at once": "",
		"bad status":     "HTTP/1.1 2x0 OK\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			addr := serve(t, func(c net.Conn) {
				c.Write([]byte(reply))
				c.Close()
			})
			if err := probeOnce(t, checkFor(t, pfile.KindHTTP, addr)); err == nil {
				t.Fatalf("reply %q counted as alive", reply)
			}
		})
	}
}

func TestHTTPProbeResolvesHostName(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	c := checkFor(t, pfile.KindHTTP, srv.Listener.Addr().String())
	c.Host = "localhost"
	if err := probeOnce(t, c); err != nil {
		t.Fatalf("probe of localhost: %v", err)
	}
}

func TestHTTPSProbe(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	// httptest's certificate is self-signed, for example.com and 127.0.0.1.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}
	if err := os.WriteFile(ca, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := srv.Listener.Addr().String()

	for _, tc := range []struct {
		name       string
		verify     bool
		ca, server string
		ok         bool
	}{
		{"verify off, self-signed", false, "", "wrong.test", true},
		{"verify on, right CA and name", true, ca, "example.com", true},
		{"verify on, right CA, IP name", true, ca, "127.0.0.1", true},
		{"verify on, wrong name", true, ca, "wrong.test", false},
		{"verify on, system pool", true, "", "example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := checkFor(t, pfile.KindHTTPS, addr)
			c.TLSVerify, c.TLSCA, c.TLSServerName = tc.verify, tc.ca, tc.server
			if err := probeOnce(t, c); (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestHTTPSProbeAgainstPlainHTTPFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if err := probeOnce(t, checkFor(t, pfile.KindHTTPS, srv.Listener.Addr().String())); err == nil {
		t.Fatal("an https probe of a plain http server succeeded")
	}
}

func TestNewRejectsBadCA(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	c := pfile.Check{Kind: pfile.KindHTTPS, Host: "127.0.0.1", Port: 1, TLSVerify: true}
	for _, path := range []string{bad, filepath.Join(t.TempDir(), "missing.pem")} {
		c.TLSCA = path
		if _, err := New(c); err == nil {
			t.Errorf("tls_ca %s accepted", path)
		}
	}
	if _, err := New(pfile.Check{Kind: 0}); err == nil {
		t.Error("a check without a kind accepted")
	}
}

func TestTCPProbe(t *testing.T) {
	accepted := make(chan struct{}, 1)
	addr := serve(t, func(c net.Conn) {
		c.Close()
		accepted <- struct{}{}
	})
	if err := probeOnce(t, checkFor(t, pfile.KindTCP, addr)); err != nil {
		t.Fatalf("tcp probe of a listener: %v", err)
	}
	waitFor(t, accepted, "the tcp probe's connection")

	if err := probeOnce(t, checkFor(t, pfile.KindTCP, closedPort(t))); err == nil {
		t.Fatal("tcp probe of a closed port succeeded")
	}
}

// A server that accepts and never answers fails the probe at its timeout,
// not later.
func TestHTTPProbeTimesOutOnHangingServer(t *testing.T) {
	addr, _ := hangingServer(t)
	c := checkFor(t, pfile.KindHTTP, addr)
	c.Timeout = 200 * time.Millisecond
	err := probeOnce(t, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the probe's deadline", err)
	}
}

// A hanging probe does not hold up another probe running beside it, and
// cancelling its context ends it at once.
func TestHangingProbeDoesNotDelayAnother(t *testing.T) {
	hangAddr, accepted := hangingServer(t)
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()

	hang := checkFor(t, pfile.KindHTTP, hangAddr)
	hang.Timeout = time.Hour // only the cancellation below ends it
	p, err := New(hang)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hangDone := make(chan error, 1)
	go func() { hangDone <- p.Probe(ctx) }()
	waitFor(t, accepted, "the hanging probe's connection")

	if err := probeOnce(t, checkFor(t, pfile.KindHTTP, healthy.Listener.Addr().String())); err != nil {
		t.Fatalf("healthy probe beside a hanging one: %v", err)
	}
	select {
	case err := <-hangDone:
		t.Fatalf("the hanging probe ended (%v) before it was cancelled", err)
	default:
	}

	cancel()
	select {
	case err := <-hangDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled probe: err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled probe did not return")
	}
}

func TestParseStatusLine(t *testing.T) {
	for line, want := range map[string]int{
		"HTTP/1.1 200 OK\r\n":      200,
		"HTTP/1.0 404 Not Found\n": 404,
		"HTTP/1.1 503\r\n":         503,
		"HTTP/2.0 301 Moved\r\n":   301,
		"HTTP/1.1 99 Low\r\n":      0,
		"HTTP/1.1 2000 OK\r\n":     0,
		"HTTP/1 200 OK\r\n":        0,
		"SSH-2.0-OpenSSH_9.6\r\n":  0,
		"HTTP/1.1  200 OK\r\n":     0,
		"":                         0,
	} {
		got, err := parseStatusLine(line)
		if want == 0 && err == nil {
			t.Errorf("%q: accepted as %d", line, got)
		}
		if want != 0 && (err != nil || got != want) {
			t.Errorf("%q: got %d, %v; want %d", line, got, err, want)
		}
	}
}

// serve accepts connections on a loopback port and hands each to handle.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// hangingServer accepts connections and never answers them; accepted
// receives one value per connection.
func hangingServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 100)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	addr = serve(t, func(c net.Conn) {
		ch <- struct{}{}
		<-done
		c.Close()
	})
	return addr, ch
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
