// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/notify"
)

// Notifications (--notify-command) through the real binaries.

// notifyRecorder is a notify command that keeps each notification it gets,
// its environment and its stdin, as files N.env and N.json of a directory
// (N counting from 1), each put in place whole.
type notifyRecorder struct {
	dir     string
	command string
}

func newNotifyRecorder(t testing.TB, sc *scene) *notifyRecorder {
	t.Helper()
	r := &notifyRecorder{dir: filepath.Join(sc.dir, "notes"), command: filepath.Join(sc.dir, "record-notify")}
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.command, fmt.Sprintf(`#!/bin/sh
n=$(ls %[1]s | grep -c '\.json$')
n=$((n + 1))
env > %[1]s/tmp.env
cat > %[1]s/tmp.json
mv %[1]s/tmp.env %[1]s/$n.env
mv %[1]s/tmp.json %[1]s/$n.json
`, r.dir), 0o755)
	return r
}

// recorded is one notification as the command got it.
type recorded struct {
	env  map[string]string
	json map[string]any
}

// wait waits until n notifications are recorded and returns them; more
// is a failure.
func (r *notifyRecorder) wait(t testing.TB, n int) []recorded {
	t.Helper()
	pollUntil(t, fmt.Sprintf("recorded %d notifications", n), func() bool {
		got := r.count(t)
		if got > n {
			t.Fatalf("%d notifications recorded, want %d", got, n)
		}
		return got == n
	})
	out := make([]recorded, n)
	for i := range out {
		env, err := os.ReadFile(filepath.Join(r.dir, strconv.Itoa(i+1)+".env"))
		if err != nil {
			t.Fatal(err)
		}
		out[i].env = map[string]string{}
		for _, line := range strings.Split(string(env), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				out[i].env[k] = v
			}
		}
		data, err := os.ReadFile(filepath.Join(r.dir, strconv.Itoa(i+1)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &out[i].json); err != nil {
			t.Fatalf("notification %d's stdin %q: %v", i+1, data, err)
		}
	}
	return out
}

func (r *notifyRecorder) count(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") && e.Name() != "tmp.json" {
			n++
		}
	}
	return n
}

// TestNotifyOnKill: a kill -9 is one notification, event down with the
// service, the dead pid and its cause, in the environment and as JSON on
// stdin; the restart and Up that follow are not notified (not chosen by
// default). A second kill is the barrier: had the first given more than
// one notification, there would be more than two by its own.
func TestNotifyOnKill(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	sc := newScene(t)
	rec := newNotifyRecorder(t, sc)
	s := newSleeper(t, sc.dir, "notified")
	pf := s.writePfile(t, sc.dir, "", "retry_count 5", "retry_interval 0", "restart_timeout 10", "kill_timeout 1")
	old := s.start(t)
	p := startPcheckFlags(t, sc, []string{"--notify-command", rec.command}, pf)
	upWith(t, p, s.name, old)

	kill9(t, old)
	next := expectSleeperRestart(t, p, 0, s, old)
	notes := rec.wait(t, 1)
	env, js := notes[0].env, notes[0].json
	for k, want := range map[string]string{
		"PWATCH_EVENT": "down", "PWATCH_SERVICE": s.name, "PWATCH_PID": strconv.Itoa(old),
		"PWATCH_TEXT": down(s.name, old), "PWATCH_CAUSE": "signal", "PWATCH_SIGNAL_NAME": "SIGKILL",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if !strings.Contains(env["PWATCH_DETAIL"], killedBy9) {
		t.Errorf("PWATCH_DETAIL=%q, want the death's cause", env["PWATCH_DETAIL"])
	}
	if js["event"] != "down" || js["service"] != s.name || js["pid"] != float64(old) {
		t.Errorf("stdin %v, want the down event of %s, pid %d", js, s.name, old)
	}
	upWith(t, p, s.name, next)
	kill9(t, next)
	expectSleeperRestart(t, p, 4, s, next)
	if second := rec.wait(t, 2)[1]; second.env["PWATCH_EVENT"] != "down" || second.env["PWATCH_PID"] != strconv.Itoa(next) {
		t.Errorf("second notification %v, want the down of pid %d", second.env, next)
	}
}

// TestNotifyRateLimitOfAFlappingService: with --notify-burst 2 and
// --notify-per 30s, four kills within the window give two notifications,
// then, when the window ends, one summary of the two others.
func TestNotifyRateLimitOfAFlappingService(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	sc := newScene(t)
	rec := newNotifyRecorder(t, sc)
	s := newSleeper(t, sc.dir, "flapping")
	pf := s.writePfile(t, sc.dir, "", "retry_count 10", "retry_interval 0", "restart_timeout 10", "kill_timeout 1")
	pid := s.start(t)
	p := startPcheckFlags(t, sc, []string{"--notify-command", rec.command, "--notify-burst", "2", "--notify-per", "30s"}, pf)
	upWith(t, p, s.name, pid)

	first := time.Now()
	for range 4 {
		pid, _ = killToUp(t, p, s, pid)
	}
	// A window of 30 s: four recoveries fit in it on a loaded host too.
	if took := time.Since(first); took > 25*time.Second {
		t.Fatalf("four kills took %s: too slow for a window of 30s", took)
	}
	notes := rec.wait(t, 3)
	for i, n := range notes[:2] {
		if n.env["PWATCH_EVENT"] != "down" || n.env["PWATCH_SERVICE"] != s.name {
			t.Errorf("notification %d: %v, want a down of %s", i+1, n.env, s.name)
		}
	}
	sum := notes[2].env
	if sum["PWATCH_EVENT"] != "suppressed" || sum["PWATCH_SUPPRESSED"] != "2" || sum["PWATCH_TEXT"] != "2 more events of "+s.name+" suppressed in 30 s" {
		t.Fatalf("third notification %v, want the summary of 2 suppressed", sum)
	}
	if since := time.Since(first); since < 29*time.Second {
		t.Fatalf("the summary came %s after the first kill, before its 30s window ended", since)
	}
}

// TestHangingNotifierDelaysNoRecovery: a notify command that never ends
// holds the one runner, yet a kill's recovery goes on as without it: the
// Up comes while the notifier still hangs, in about the time the same kill
// takes under a pcheck without --notify-command (measured first, on the
// same service), far below the notifier's 30 s timeout.
func TestHangingNotifierDelaysNoRecovery(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	sc := newScene(t)
	hangPID := filepath.Join(sc.dir, "hang.pid")
	hang := filepath.Join(sc.dir, "hang-notify")
	writeFile(t, hang, fmt.Sprintf("#!/bin/sh\necho $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s\nexec sleep 100000\n", hangPID), 0o755)
	s := newSleeper(t, sc.dir, "unhindered")
	pf := s.writePfile(t, sc.dir, "", "retry_count 5", "retry_interval 0", "restart_timeout 10", "kill_timeout 1")
	pid := s.start(t)

	// The figure without a notifier.
	plain := startPcheckFlags(t, sc, []string{"--state-dir", filepath.Join(sc.dir, "plain")}, pf)
	upWith(t, plain, s.name, pid)
	pid, baseline := killToUp(t, plain, s, pid)
	plain.stop()

	p := startPcheckFlags(t, sc, []string{"--notify-command", hang, "--notify-events", "down,restart,up"}, pf)
	upWith(t, p, s.name, pid)
	// The first kill sets the notifier hanging.
	kill9(t, pid)
	pid = expectSleeperRestart(t, p, 0, s, pid)
	var notifier int
	pollUntil(t, "saw the notify command start", func() bool {
		b, err := os.ReadFile(hangPID)
		notifier, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && notifier > 0
	})
	upWith(t, p, s.name, pid)

	// The second kill's recovery, with the runner stuck and a queue
	// filling behind it.
	_, took := killToUp(t, p, s, pid)
	if !alive(notifier) {
		t.Fatalf("the notify command %d ended before the Up: the test proves nothing", notifier)
	}
	t.Logf("kill -9 to Up: %s without a notifier, %s with one hanging", baseline, took)
	// A runner that held the recovery would hold it to the notifier's
	// 30 s timeout; 10 s is room for a loaded host's single timings.
	if slack := max(3*baseline+2*time.Second, 10*time.Second); took > slack {
		t.Fatalf("kill -9 to Up took %s with a hanging notifier, %s without: more than %s", took, baseline, slack)
	}
	// pcheck's stop kills the command it started.
	p.stop()
	waitGone(t, notifier)
}

// killToUp kills pid, the sleeper's one process, with SIGKILL, checks that
// p logs its death and the restart (its 4 lines after those logged so
// far) and returns the new pid and the time from the kill to the Up line.
func killToUp(t *testing.T, p *pcheckRun, s *sleeper, pid int) (int, time.Duration) {
	t.Helper()
	first := len(p.allLines())
	killed := time.Now()
	kill9(t, pid)
	next := expectSleeperRestart(t, p, first, s, pid)
	return next, time.Since(killed)
}

// sampleNote is a Down as pcheck hands it to a notify command, a hostile
// sender's name in it.
func sampleNote() notify.Notification {
	return notify.Notification{Host: "node1", Detail: "Process ['web',pid=412] killed by signal 9 (SIGKILL)", Event: events.Event{
		Seq: 3, Time: time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC), Event: "down", Service: "web", PID: 412,
		Text:   "Process ['web',pid=412] Down",
		Fields: map[string]string{"cause": "signal", "sender_comm": "x\nSubject: forged $(id)"},
	}}
}

// runSample runs scripts/notify/NAME with args as pcheck would: the
// notification in the environment (notify.Env) and as JSON on stdin.
func runSample(t *testing.T, name string, note notify.Notification, args ...string) {
	t.Helper()
	input, err := json.Marshal(note)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join("..", "scripts", "notify", name), args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, notify.Env(note)...)
	cmd.Stdin = bytes.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// The sample mail command hands sendmail one mail to the recipients, with
// the event in its subject and body and no header a value could add.
func TestNotifySampleMail(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "mail")
	sendmail := filepath.Join(dir, "sendmail")
	writeFile(t, sendmail, "#!/bin/sh\nprintf '%s\\n' \"$*\" > "+got+"\ncat >> "+got+"\n", 0o755)
	note := sampleNote()
	note.Host = "node1\nBcc: evil@example.com"
	runSample(t, "mail", note, "--sendmail", sendmail, "--from", "pwatch@node1", "ops@example.com", "dev@example.com")
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	mail := string(b)
	head, body, _ := strings.Cut(mail, "\n\n")
	for _, want := range []string{"-oi -- ops@example.com dev@example.com\n", "From: pwatch@node1\n", "To: ops@example.com, dev@example.com\n", "Subject: [pwatch] node1Bcc: evil@example.com: web down\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("mail head lacks %q:\n%s", want, head)
		}
	}
	if strings.Contains(head, "\nBcc:") {
		t.Errorf("a value added a header:\n%s", head)
	}
	for _, want := range []string{"Process ['web',pid=412] Down\n", note.Detail, "cause:   signal", `"event":"down"`} {
		if !strings.Contains(body, want) {
			t.Errorf("mail body lacks %q:\n%s", want, body)
		}
	}
}

// The sample webhook POSTs the event's JSON as it is, with the headers
// asked for.
func TestNotifySampleWebhook(t *testing.T) {
	type request struct {
		method, ctype, auth, other string
		body                       []byte
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("X-Other"), body}
	}))
	defer srv.Close()
	headers := filepath.Join(t.TempDir(), "headers")
	writeFile(t, headers, "Authorization: Bearer t0ken\n", 0o600)
	note := sampleNote()
	runSample(t, "webhook", note, "--header", "@"+headers, "--header", "X-Other: a b", srv.URL+"/hook")
	r := <-got
	want, _ := json.Marshal(note)
	if r.method != http.MethodPost || r.ctype != "application/json" || r.auth != "Bearer t0ken" || r.other != "a b" || !bytes.Equal(r.body, want) {
		t.Fatalf("webhook sent %s %q %q %q %s, want POST of %s with the headers", r.method, r.ctype, r.auth, r.other, r.body, want)
	}
}
