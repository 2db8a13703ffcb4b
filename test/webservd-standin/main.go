// SPDX-License-Identifier: Apache-2.0

// Command webservd-standin stands in for Oracle iPlanet (Sun ONE) Web
// Server 7's processes in the e2e tests of pfile/sunone.pfile, which
// cannot run the real server (there is no package of it). It copies the
// vendor's documented process shape, nothing more: installed as
// ROOT/lib/webservd-wdog and ROOT/lib/webservd, started by an instance's
// bin/startserv as
//
//	webservd-wdog -d INSTANCE/config -r ROOT -t TEMP
//
// the watchdog runs the primordial process (webservd, same arguments) and
// starts a new one when it dies abnormally; the primordial binds the
// instance's port (INSTANCE/config/port here, server.xml in the real one),
// writes TEMP/pid and runs two worker processes (webservd, same
// arguments), which answer HTTP on that port, and replaces a worker that
// dies. Workers end when their primordial does. SIGTERM stops a level and
// everything below it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const workerEnv = "WEBSERVD_STANDIN_WORKER"

func main() {
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	config := fs.String("d", "", "the instance's config directory")
	root := fs.String("r", "", "the install root")
	temp := fs.String("t", "", "the instance's temp directory")
	fs.Parse(os.Args[1:])
	if *config == "" || *root == "" || *temp == "" {
		fmt.Fprintln(os.Stderr, "usage: webservd[-wdog] -d CONFIG -r ROOT -t TEMP")
		os.Exit(2)
	}
	var err error
	switch {
	case filepath.Base(os.Args[0]) == "webservd-wdog":
		err = watchdog(filepath.Join(*root, "lib", "webservd"))
	case os.Getenv(workerEnv) != "":
		err = worker(*config)
	default:
		err = primordial(*config, *temp)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s[%d]: %v\n", filepath.Base(os.Args[0]), os.Getpid(), err)
		os.Exit(1)
	}
}

// child runs exe with this process's arguments.
func child(exe string, env []string, files ...*os.File) (*exec.Cmd, error) {
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = exe
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	return cmd, cmd.Start()
}

// abnormal reports whether a child's end calls for a new one.
func abnormal(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit)
}

// watchdog keeps one primordial process running.
func watchdog(exe string) error {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	for {
		cmd, err := child(exe, nil)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-term:
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
			return nil
		case err := <-done:
			if !abnormal(err) {
				return nil
			}
			fmt.Fprintf(os.Stderr, "webservd-wdog: primordial %d ended (%v): starting another\n", cmd.Process.Pid, err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// primordial binds the port and keeps two workers serving it.
func primordial(config, temp string) error {
	b, err := os.ReadFile(filepath.Join(config, "port"))
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s/port: %v", config, err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ended := make(chan *exec.Cmd)
	workers := map[*exec.Cmd]bool{}
	start := func() error {
		cmd, err := child(os.Args[0], []string{workerEnv + "=1"}, lf)
		if err != nil {
			return err
		}
		workers[cmd] = true
		go func() { cmd.Wait(); ended <- cmd }()
		return nil
	}
	for range 2 {
		if err := start(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(temp, "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	for {
		select {
		case <-term:
			for w := range workers {
				w.Process.Signal(syscall.SIGTERM)
			}
			for len(workers) > 0 {
				delete(workers, <-ended)
			}
			return nil
		case w := <-ended:
			delete(workers, w)
			if err := start(); err != nil {
				return err
			}
		}
	}
}

// worker answers HTTP on the listener it inherited, until its primordial
// ends.
func worker(config string) error {
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return err
	}
	parent := os.Getppid()
	go func() {
		for os.Getppid() == parent {
			time.Sleep(100 * time.Millisecond)
		}
		os.Exit(0)
	}()
	body := "webservd stand-in of " + config + "\n"
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	}))
}
