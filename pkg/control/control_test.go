// SPDX-License-Identifier: Apache-2.0

package control_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// The test binary doubles as a padmin for TestNonRootRefused: run with
// clientEnv set, it calls status on that socket and prints the outcome.
const clientEnv = "PWATCH_CONTROL_TEST_CLIENT"

// With impostorEnv set, it listens on that socket as whoever runs it and
// answers every request with an empty success, as a user's socket bound
// first at pcheck's path would.
const impostorEnv = "PWATCH_CONTROL_TEST_IMPOSTOR"

func TestMain(m *testing.M) {
	if path := os.Getenv(impostorEnv); path != "" {
		ln, err := net.Listen("unix", path)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("ready")
		for {
			conn, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			io.WriteString(conn, "{}\n")
			conn.Close()
		}
	}
	if path := os.Getenv(clientEnv); path != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := control.Client{Path: path}.Status(ctx, "")
		fmt.Printf("uid=%d err=%v\n", os.Getuid(), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeHandler answers from fixed data and records what it was asked.
type fakeHandler struct {
	mu    sync.Mutex
	calls []string
	block chan struct{} // when set, Stop waits for it or for ctx
	// stopEnded: a Stop has returned.
	stopEnded atomic.Bool
}

func (f *fakeHandler) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeHandler) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var since = time.Date(2026, 5, 24, 9, 35, 26, 0, time.UTC)

func (f *fakeHandler) Status(_ context.Context, name string) ([]control.ServiceStatus, error) {
	f.record("status " + name)
	all := []control.ServiceStatus{
		{Name: "apache2", State: "Up", PIDs: []int{1234}, UptimeSeconds: 10921, Restarts: 1,
			LastEvent: &control.Event{Time: since, Text: "('apache2',pid=1234) Up"}},
		{Name: "nginx", State: "Paused"},
	}
	if name == "" {
		return all, nil
	}
	for _, s := range all {
		if s.Name == name {
			return []control.ServiceStatus{s}, nil
		}
	}
	return nil, fmt.Errorf("no service %q", name)
}

func (f *fakeHandler) Rules(_ context.Context, name string) (json.RawMessage, error) {
	f.record("rules " + name)
	return json.RawMessage(`[{"name":"apache2","retry_count":3}]`), nil
}

func (f *fakeHandler) Stop(ctx context.Context, name string) error {
	f.record("stop " + name)
	defer f.stopEnded.Store(true)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if name == "ghost" {
		return errors.New(`no service "ghost"`)
	}
	return nil
}

func (f *fakeHandler) Start(_ context.Context, name string) error {
	f.record("start " + name)
	return nil
}

func (f *fakeHandler) Reload(_ context.Context, name string) []error {
	f.record("reload " + name)
	if name == "" {
		return []error{errors.New("bad.pfile:3: unknown key \"foo\""), nil, errors.New("worse.pfile:1: syntax error")}
	}
	return nil
}

func (f *fakeHandler) RebootCount(_ context.Context, reset bool) (control.RebootCount, error) {
	f.record(fmt.Sprintf("reboot-count %v", reset))
	return control.RebootCount{Count: 2, Threshold: 3, WindowSeconds: 86400}, nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func listen(t *testing.T, path string, h control.Handler, logger *slog.Logger) *control.Server {
	t.Helper()
	srv, err := control.Listen(path, h, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestRoundTrip(t *testing.T) {
	testpriv.Root(t) // the server answers uid 0 only
	path := filepath.Join(t.TempDir(), "run", "pwatch", "pcheck.sock")
	h := &fakeHandler{}
	listen(t, path, h, nil)
	c := control.Client{Path: path}
	ctx := ctxT(t)

	got, err := c.Status(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := h.Status(ctx, "")
	want[1].PIDs = []int{} // the server sends [] rather than null
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status\n got %+v\nwant %+v", got, want)
	}
	if _, err := c.Status(ctx, "tomcat"); err == nil || err.Error() != `no service "tomcat"` {
		t.Errorf("status of unknown service: %v", err)
	}
	if err := c.Stop(ctx, "apache2"); err != nil {
		t.Error(err)
	}
	if err := c.Stop(ctx, "ghost"); err == nil || err.Error() != `no service "ghost"` {
		t.Errorf("stop ghost: %v", err)
	}
	if err := c.Stop(ctx, ""); err == nil {
		t.Error("stop without a name was taken")
	}
	if err := c.Start(ctx, "apache2"); err != nil {
		t.Error(err)
	}
	if err := c.Reload(ctx, "apache2"); err != nil {
		t.Error(err)
	}
	err = c.Reload(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "bad.pfile:3") || !strings.Contains(err.Error(), "worse.pfile:1") {
		t.Errorf("reload errors: %v", err)
	}
	rules, err := c.Rules(ctx, "apache2")
	if err != nil || string(rules) != `[{"name":"apache2","retry_count":3}]` {
		t.Errorf("rules %s, %v", rules, err)
	}
	rc, err := c.RebootCount(ctx, true)
	if err != nil || rc != (control.RebootCount{Count: 2, Threshold: 3, WindowSeconds: 86400}) {
		t.Errorf("reboot-count %+v, %v", rc, err)
	}
	if _, err := control.Call(ctx, path, control.Request{Command: "explode"}); err == nil || !strings.Contains(err.Error(), `unknown command "explode"`) {
		t.Errorf("unknown command: %v", err)
	}

	wantCalls := []string{"status ", "status ", "status tomcat", "stop apache2", "stop ghost",
		"start apache2", "reload apache2", "reload ", "rules apache2", "reboot-count true"}
	if calls := h.Calls(); !reflect.DeepEqual(calls, wantCalls) {
		t.Errorf("handler calls\n got %q\nwant %q", calls, wantCalls)
	}

	for p, mode := range map[string]os.FileMode{path: os.ModeSocket | 0o600, filepath.Dir(path): os.ModeDir | 0o755} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
}

// The wire format padmin --json users see.
func TestStatusJSONShape(t *testing.T) {
	b, err := json.Marshal(control.ServiceStatus{Name: "web", State: "Up", PIDs: []int{1, 2}, UptimeSeconds: 5, Restarts: 1,
		LastEvent: &control.Event{Time: since, Text: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"web","state":"Up","pids":[1,2],"uptime":5,"restarts":1,"attempts_left":0,"next_attempt_in":null,"rearm_in":null,"last_event":{"time":"2026-05-24T09:35:26Z","text":"x"}}`
	if string(b) != want {
		t.Errorf("\n got %s\nwant %s", b, want)
	}
	in := 12.5
	b, err = json.Marshal(control.ServiceStatus{Name: "db", State: "RetryOver", PIDs: []int{}, Restarts: 3, RearmIn: &in})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"name":"db","state":"RetryOver","pids":[],"uptime":0,"restarts":3,"attempts_left":0,"next_attempt_in":null,"rearm_in":12.5}`
	if string(b) != want {
		t.Errorf("\n got %s\nwant %s", b, want)
	}
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	// A socket file whose pcheck died: connect is refused.
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)

	for _, path := range []string{missing, stale} {
		_, err := control.Call(ctxT(t), path, control.Request{Command: control.CommandStatus})
		var unreachable *control.UnreachableError
		if !errors.As(err, &unreachable) || unreachable.Path != path {
			t.Errorf("%s: %v, want an UnreachableError", path, err)
			continue
		}
		if want := "cannot reach pcheck at " + path + ": is it running? ("; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
	}
}

func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func TestStaleSocketReplacedLiveOneKept(t *testing.T) {
	testpriv.Root(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "pcheck.sock")
	staleSocket(t, path)
	srv := listen(t, path, &fakeHandler{}, nil)
	if _, err := (control.Client{Path: path}).Status(ctxT(t), ""); err != nil {
		t.Fatalf("after replacing a stale socket: %v", err)
	}

	// A second pcheck must not steal the socket of one that answers.
	if second, err := control.Listen(path, &fakeHandler{}, nil); err == nil {
		second.Close()
		t.Fatal("a second server took over a live socket")
	} else if !strings.Contains(err.Error(), "another pcheck is listening") {
		t.Errorf("second server: %v", err)
	}
	if _, err := (control.Client{Path: path}).Status(ctxT(t), ""); err != nil {
		t.Errorf("the first server stopped answering: %v", err)
	}

	// Close removes the socket.
	srv.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}

	// A non-socket in the way is an operator's file: never removed.
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("keep"), 0o600)
	if s, err := control.Listen(regular, &fakeHandler{}, nil); err == nil {
		s.Close()
		t.Error("listened over a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Error("regular file was replaced")
	}
}

// Close cancels a command in progress and waits for it.
func TestCloseCancelsCommands(t *testing.T) {
	testpriv.Root(t)
	path := filepath.Join(t.TempDir(), "pcheck.sock")
	h := &fakeHandler{block: make(chan struct{})}
	srv, err := control.Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() { result <- control.Client{Path: path}.Stop(context.Background(), "web") }()
	waitFor(t, func() bool { return len(h.Calls()) == 1 })
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return while a command was in progress")
	}
	if err := <-result; err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("client got %v, want the cancellation", err)
	}
}

// A client that hangs up (padmin timed out, or killed) ends its command's
// context: what the daemon has not yet accepted for it is not done. The
// server's long-lived context would run it on regardless.
func TestClientGoneCancelsItsCommand(t *testing.T) {
	testpriv.Root(t)
	path := filepath.Join(t.TempDir(), "pcheck.sock")
	h := &fakeHandler{block: make(chan struct{})}
	srv, err := control.Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- control.Client{Path: path}.Stop(ctx, "web") }()
	waitFor(t, func() bool { return len(h.Calls()) == 1 })
	cancel() // padmin gives up and closes the connection
	if err := <-result; err == nil {
		t.Fatal("the abandoned call succeeded")
	}
	// The handler's ctx ended (it returned); it was not left to block
	// until the server closes.
	waitFor(t, func() bool { return h.stopEnded.Load() })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentClients(t *testing.T) {
	testpriv.Root(t)
	path := filepath.Join(t.TempDir(), "pcheck.sock")
	listen(t, path, &fakeHandler{}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			s, err := control.Client{Path: path}.Status(ctxT(t), "apache2")
			if err == nil && (len(s) != 1 || s[0].Name != "apache2") {
				err = fmt.Errorf("got %+v", s)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A padmin that is not root is refused twice over: the socket's mode stops
// it at connect, and if the mode were wider, the server's SO_PEERCRED check
// still refuses it before any command runs. The client runs for real as
// uid 65534 (nobody): the test binary re-executed with other credentials.
func TestNonRootRefused(t *testing.T) {
	testpriv.Root(t)
	dir, err := os.MkdirTemp("", "pwatch-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // nobody must reach the socket and the binary
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	copyFile(t, os.Args[0], bin)

	path := filepath.Join(dir, "pcheck.sock")
	var logs syncBuffer
	h := &fakeHandler{}
	listen(t, path, h, slog.New(slog.NewTextHandler(&logs, nil)))

	const want = "permission denied: padmin must run as root (uid 65534)"
	asNobody := func() string {
		cmd := exec.Command(bin)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), clientEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as nobody: %v: %s", err, out)
		}
		if !strings.HasPrefix(string(out), "uid=65534 ") {
			t.Fatalf("client did not run as nobody: %s", out)
		}
		return string(out)
	}

	// The socket's mode (0600, root's).
	if out := asNobody(); !strings.Contains(out, want) {
		t.Errorf("through a 0600 socket: %q, want %q", out, want)
	}
	if strings.Contains(logs.String(), "refused") {
		t.Errorf("the server saw a connection the socket mode should have stopped:\n%s", logs.String())
	}

	// The server's own check, with the mode opened up.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := asNobody(); !strings.Contains(out, want) {
		t.Errorf("through a 0666 socket: %q, want %q", out, want)
	}
	if !strings.Contains(logs.String(), "control connection refused: not root") || !strings.Contains(logs.String(), "uid=65534") {
		t.Errorf("server did not log the refusal:\n%s", logs.String())
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("a non-root client reached the handler: %q", calls)
	}
}

// padmin talks only to a root server: a socket another user bound at the
// path (a sticky directory lets anyone create the name first) would hear
// root's commands and answer for pcheck.
func TestClientRefusesAServerNotRoot(t *testing.T) {
	testpriv.Root(t)
	dir, err := os.MkdirTemp("", "pwatch-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	copyFile(t, os.Args[0], bin)
	theirs := filepath.Join(dir, "nobody")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(theirs, "pcheck.sock")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), impostorEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("impostor server as nobody: %q, %v", line, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = control.Client{Path: path}.Status(ctx, "")
	want := fmt.Sprintf("control socket %s is served by uid 65534 (pid %d), not root", path, cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Status through nobody's socket = %v, want an error containing %q", err, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is written concurrently while the test reads it.
type syncBuffer = syncbuf.Buffer

func TestFormatStatus(t *testing.T) {
	t.Setenv("TZ", "UTC")
	failing := time.Date(2025, 5, 24, 9, 40, 0, 0, time.UTC)
	var b bytes.Buffer
	err := control.FormatStatus(&b, []control.ServiceStatus{
		{Name: "apache2", State: "Up", PIDs: []int{1234}, UptimeSeconds: 10921, Restarts: 1, AttemptsLeft: 2,
			LastEvent: &control.Event{Time: since, Text: "('apache2',pid=1234) Up"},
			Usage:     &control.Usage{MemoryBytes: ptrU(432537600), CPUPercent: ptr(12.4), FDs: ptrI(88)}},
		{Name: "tomcat", State: "Up", PIDs: []int{7, 9}, UptimeSeconds: 2*86400 + 3*3600, Restarts: 0,
			Usage: &control.Usage{MemoryBytes: ptrU(2 << 30)}}, // a first sample: no CPU yet; no fds_max
		{Name: "db", State: "Restarting", PIDs: nil, UptimeSeconds: 0, Restarts: 2, Step: "script running",
			LastDeath: &control.Death{Time: since, Cause: "oom", Text: "killed by the OOM killer"}},
		{Name: "q", State: "Up", PIDs: []int{5}, UptimeSeconds: 307,
			Checks: []control.CheckStatus{{Block: "_bi_webserv", State: "starting"}}},
		{Name: "r", State: "Up", PIDs: []int{6}, UptimeSeconds: 42,
			Checks: []control.CheckStatus{{Block: "_bi_webserv", State: "failing", FailingSince: &failing, NotCountedSeconds: 20}}},
		{Name: "s", State: "Up", PIDs: []int{8}, UptimeSeconds: 42,
			Checks: []control.CheckStatus{{Block: "_bi_webserv", State: "ok"}, {Block: "_bi_socket", State: "failing", FailingSince: &failing}}},
		{Name: "d2", State: "Down", Restarts: 2, AttemptsLeft: 1, NextAttemptIn: ptr(7.6)},
		{Name: "q2", State: "RetryOver", Restarts: 3, RearmIn: ptr(570)},
		{Name: "s2", State: "Down", Restarts: 1, AttemptsLeft: 2, NextAttemptIn: ptr(0.2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `SERVICE  STATE       PIDS  UPTIME  RESTARTS  LEFT  NEXT            CHECKS                                                    MEM       CPU  FDS  LAST EVENT                               LAST DEATH
apache2  Up          1234  3h02m   1         2     -               -                                                         412.5MiB  12%  88   May 24 09:35:26 ('apache2',pid=1234) Up  -
tomcat   Up          7,9   2d03h   0         0     -               -                                                         2GiB      -    -    -                                        -
db       Restarting  -     -       2         0     script running  -                                                         -         -    -    -                                        May 24 09:35:26 killed by the OOM killer
q        Up          5     5m07s   0         0     -               starting                                                  -         -    -    -                                        -
r        Up          6     42s     0         0     -               failing since May 24 09:40:00 (20s not counted)           -         -    -    -                                        -
s        Up          8     42s     0         0     -               _bi_webserv=ok, _bi_socket=failing since May 24 09:40:00  -         -    -    -                                        -
d2       Down        -     -       2         1     attempt 8s      -                                                         -         -    -    -                                        -
q2       RetryOver   -     -       3         0     re-arm 9m30s    -                                                         -         -    -    -                                        -
s2       Down        -     -       1         2     attempt now     -                                                         -         -    -    -                                        -
`
	if b.String() != want {
		t.Errorf("\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// BenchmarkStatusCall is one padmin status round trip: connect, peer
// check, request, answer.
func BenchmarkStatusCall(b *testing.B) {
	testpriv.Root(b) // the server answers uid 0 only
	path := filepath.Join(b.TempDir(), "pcheck.sock")
	srv, err := control.Listen(path, &fakeHandler{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c := control.Client{Path: path}
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Status(ctx, "apache2"); err != nil {
			b.Fatal(err)
		}
	}
}

func ptr(f float64) *float64 { return &f }

func ptrU(n uint64) *uint64 { return &n }

func ptrI(n int) *int { return &n }
