// SPDX-License-Identifier: Apache-2.0

// demoserver is a small HTTP (or HTTPS) server for pwatch's demo and tests
// that can be told to misbehave the ways real servers do:
//
//	SIGUSR1  hang: stop accepting connections and stop answering (the kernel
//	         keeps queueing connections until the accept queue is full)
//	SIGUSR2  close the listening socket while the process lives on
//	SIGWINCH spin: hang, and burn a CPU in an endless loop (a server stuck
//	         in a busy loop)
//
// It serves "hello from demoserver\n" on every path, after -delay and
// after burning -work of CPU time (a server whose answers need the CPU;
// with -work-runs N only N requests in every N+1 do, the others answer at
// once; a client that goes away ends the burn).
// With -bind-delay it runs that long before it listens (a slow start).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demoserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("listen", "127.0.0.1:18080", "address to listen on")
	backlog := flag.Int("backlog", 128, "listen(2) backlog: the accept queue's length")
	delay := flag.Duration("delay", 0, "wait this long before answering")
	cert := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	key := flag.String("tls-key", "", "and this key (PEM)")
	pidFile := flag.String("pidfile", "", "write our pid here")
	work := flag.Duration("work", 0, "CPU time to burn for each answer")
	workRuns := flag.Int("work-runs", 0, "burn -work for this many requests in a row, then answer one at once (0: every request burns)")
	bindDelay := flag.Duration("bind-delay", 0, "wait this long before listening")
	flag.Parse()

	time.Sleep(*bindDelay)
	ln, err := listen(*addr, *backlog)
	if err != nil {
		return err
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
	}
	hang := make(chan struct{})
	var hangOnce sync.Once
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hanging wins over answering, even with no delay: a select on
		// both would pick at random.
		select {
		case <-hang:
			<-r.Context().Done()
			return
		default:
		}
		select {
		case <-hang:
			<-r.Context().Done() // a hung server never answers
			return
		case <-time.After(*delay):
		}
		if n := requests.Add(1); *workRuns == 0 || n%uint64(*workRuns+1) != 0 {
			burn(r.Context(), *work)
		}
		fmt.Fprintln(w, "hello from demoserver")
	})
	srv := &http.Server{Handler: handler}
	gl := &gatedListener{Listener: ln, hang: hang}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range sigs {
			switch s {
			case syscall.SIGUSR1:
				hangOnce.Do(func() { close(hang) })
			case syscall.SIGUSR2:
				ln.Close()
			case syscall.SIGWINCH:
				hangOnce.Do(func() { close(hang) })
				go spin()
			default:
				srv.Shutdown(context.Background())
				os.Exit(0)
			}
		}
	}()

	if *cert != "" {
		err = srv.ServeTLS(gl, *cert, *key)
	} else {
		err = srv.Serve(gl)
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		select {} // listener closed on purpose: live on without it
	}
	return err
}

// listen opens a TCP listener with an explicit backlog, which net.Listen
// does not let us choose (tests fill the accept queue).
func listen(addr string, backlog int) (net.Listener, error) {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	family := syscall.AF_INET
	var sa syscall.Sockaddr
	if ip4 := tcp.IP.To4(); ip4 != nil || tcp.IP == nil {
		a := &syscall.SockaddrInet4{Port: tcp.Port}
		copy(a.Addr[:], ip4)
		sa = a
	} else {
		family = syscall.AF_INET6
		a := &syscall.SockaddrInet6{Port: tcp.Port}
		copy(a.Addr[:], tcp.IP.To16())
		sa = a
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		return nil, err
	}
	return net.FileListener(f)
}

// gatedListener stops accepting once hang is closed, so connections pile up
// in the kernel's accept queue as they do in front of a stuck server.
type gatedListener struct {
	net.Listener
	hang chan struct{}
}

func (g *gatedListener) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case <-g.hang:
		// Hold this connection unanswered and accept no more.
		<-make(chan struct{})
		return c, nil
	default:
		return c, nil
	}
}

var requests atomic.Uint64

// burn keeps this thread on the CPU until it has used d of CPU time (on a
// starved node that takes longer than d), or ctx ends.
func burn(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	for i := 0; threadCPU()-start < d; i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			return
		}
	}
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

var spun atomic.Uint64

// spin never returns and never sleeps.
func spin() {
	for {
		spun.Add(1)
	}
}
