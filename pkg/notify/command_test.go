// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// writeScript puts an executable script in a directory of the test's own.
func writeScript(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "notify")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitFile(t *testing.T, path string, within time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && strings.HasSuffix(string(b), "\n") {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %s", path, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The command gets the event in PWATCH_ variables and as JSON on stdin,
// hostile text as plain data (no shell ever sees it), and nothing of
// pcheck's environment but PWATCH_ variables.
func TestCommandGetsTheEventInItsEnvironmentAndOnStdin(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, dir, "env > "+dir+"/env.tmp && mv "+dir+"/env.tmp "+dir+"/env\ncat > "+dir+"/stdin\n")
	t.Setenv("HOME_OF_TEST", "leak")
	t.Setenv("PWATCH_CAUSE", "inherited")
	n, err := New(Config{Argv: []string{script}, Events: []string{"down"}}, testLogger(t, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	hostile := "$(touch " + dir + "/pwned); `touch " + dir + "/pwned` 'x"
	note := Notification{Host: "node1", Detail: "Process ['web',pid=412] killed by signal 9 (SIGKILL)", Event: events.Event{
		Seq: 7, Time: time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC), Event: "down", Service: "web", PID: 412,
		Text:   "Process ['web',pid=412] Down",
		Fields: map[string]string{"cause": "signal", "signal_name": "SIGKILL", "sender_comm": hostile, "Bad-Key": "x"},
	}}
	if err := n.runCommand(context.Background(), note); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(waitFile(t, filepath.Join(dir, "env"), 10*time.Second)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{
		"PWATCH_EVENT": "down", "PWATCH_SERVICE": "web", "PWATCH_PID": "412", "PWATCH_SEQ": "7",
		"PWATCH_TEXT": "Process ['web',pid=412] Down", "PWATCH_TIME": "2026-12-06T23:00:00Z",
		"PWATCH_CAUSE": "signal", "PWATCH_SIGNAL_NAME": "SIGKILL", "PWATCH_HOST": "node1",
		"PWATCH_DETAIL": note.Detail, "PWATCH_SENDER_COMM": hostile,
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if _, ok := env["HOME_OF_TEST"]; ok {
		t.Error("pcheck's own environment leaked into the command's")
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("hostile text in an event ran as a command")
	}
	var got Notification
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if err := json.Unmarshal(stdin, &got); err != nil {
		t.Fatalf("stdin %q: %v", stdin, err)
	}
	if got.Event.Event != "down" || got.Service != "web" || got.PID != 412 || got.Fields["sender_comm"] != hostile || got.Detail != note.Detail || got.Host != "node1" {
		t.Fatalf("stdin decoded to %+v", got)
	}
}

// A command that never ends is killed, with what it started, at its
// timeout; the run counts as failed and the next notification still runs.
func TestHangingCommandIsKilledAtItsTimeoutAndTheNextRuns(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, dir, `if [ "$PWATCH_SERVICE" = hang ]; then
	sleep 300 </dev/null >/dev/null 2>&1 &
	echo $! > `+dir+`/child
	echo $$ > `+dir+`/leader
	wait
fi
echo "$PWATCH_SERVICE" >> `+dir+`/ran
`)
	var logs syncbuf.Buffer
	n, err := New(Config{Argv: []string{script}, Events: []string{"retry_over"}, Timeout: 3 * time.Second}, testLogger(t, &logs))
	if err != nil {
		t.Fatal(err)
	}
	hub := events.NewHub(10, func() events.Stamp { return events.Stamp{Time: time.Now()} })
	sub, _ := hub.Subscribe(events.Filter{}, 16)
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx, sub) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	hub.Record(msg.RetryOver("hang", "continue"))
	hub.Record(msg.RetryOver("next", "continue"))
	child, _ := strconv.Atoi(strings.TrimSpace(string(waitFile(t, filepath.Join(dir, "child"), 10*time.Second))))
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) }) // our own sleep, should the test fail
	ran := waitFile(t, filepath.Join(dir, "ran"), 20*time.Second)
	took := time.Since(start)
	if string(ran) != "next\n" {
		t.Fatalf("ran %q, want only the next one", ran)
	}
	if took < 3*time.Second || took > 15*time.Second {
		t.Fatalf("the next notification ran %s after the hanging one began, want just past its 3s timeout", took)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !gone(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the hanging command's child %d survived its timeout", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for s := n.Stats(); s.Failed != 1 || s.Sent != 1; s = n.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 1 failed and 1 sent", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "did not finish within 3s and was killed") {
		t.Fatalf("no failure logged: %s", logs.String())
	}
}

// gone: no such process, or a zombie not yet reaped.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// A command the trust rule refuses just before its run is not run: the
// project's Program refused line says why, and the run counts as failed.
func TestRefusedCommandIsLoggedAndCounted(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, dir, "touch "+dir+"/ran\n")
	if err := os.Chmod(script, 0o757); err != nil { // anyone may write it
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	n, err := New(Config{Argv: []string{script}, Events: []string{"down"}}, testLogger(t, &logs))
	if err != nil {
		t.Fatal(err)
	}
	err = n.runCommand(context.Background(), Notification{Event: events.Event{Event: "down", Service: "web"}})
	if err == nil {
		t.Fatal("a world-writable command ran")
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("the refused command ran")
	}
	if !strings.Contains(logs.String(), "Program refused ('web',"+script+")") {
		t.Fatalf("no Program refused line: %s", logs.String())
	}
}

func TestFieldNamesThatBecomeVariables(t *testing.T) {
	long := "a" + strings.Repeat("b", 63)
	for name, ok := range map[string]bool{
		long: true, long + "c": false, "old_pid": true, "x9": true,
		"": false, "9x": false, "_x": false, "Up": false, "a-b": false, "a\nb": false,
	} {
		if isFieldName(name) != ok {
			t.Errorf("isFieldName(%q) = %v", name, !ok)
		}
	}
}
