// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// liveWithin is how soon after an event the page must show it.
const liveWithin = time.Second

// webService is a sleep(1) copy of its own, started by pcheck through a
// restart script that fails once when its marker file exists: the service
// then stays Down for retry_interval, long enough to be seen Down.
type webService struct {
	name, exe, failOnce, pfile string
}

func newWebService(t testing.TB, dir, name string) *webService {
	t.Helper()
	w := &webService{name: name, exe: filepath.Join(dir, name+"-sleep"), failOnce: filepath.Join(dir, name+".fail-once")}
	copyFile(t, "/usr/bin/sleep", w.exe)
	t.Cleanup(func() { killExe(w.exe) })
	script := filepath.Join(dir, name+".start")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\nif [ -e %s ]; then rm -f %[1]s; exit 1; fi\nexec setsid -f %s 100000 </dev/null >/dev/null 2>&1\n",
		w.failOnce, w.exe), 0o755)
	w.pfile = filepath.Join(dir, name+".pfile")
	writeFile(t, w.pfile, fmt.Sprintf("process %s\nrestart_script %s\nretry_count 5\nretry_interval 2\n", w.exe, script), 0o644)
	return w
}

// browser is a headless chromium tab; it records what the page writes to
// the console, its uncaught exceptions and the browser's own error and
// warning entries (a refused script or stylesheet, a failed load).
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// newBrowser starts chromium, or skips the test with the reason it cannot
// (failing instead where privileged tests are required).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-headless-shell", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testpriv.Unavailable(t, "chromium cannot start: it is not installed (scripts/install-deps.sh installs Debian's chromium)")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser: no timeout on its context, which
	// would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		testpriv.Unavailable(t, fmt.Sprintf("chromium (%s) cannot start: %v", path, err))
	}
	b := &browser{ctx: ctx}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return // the tab is closed
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errors)
}

// do runs steps in the tab, bounded by the e2e deadline.
func (b *browser) do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, deadline)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("chromium: %v", err)
	}
}

// value runs one action that gives a value.
func value[T any](t testing.TB, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, deadline)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return v
}

// recorder watches the page from inside (a MutationObserver): every state
// each service's row shows and every event row that appears, each with
// the browser's clock when it did. That the object is still there at the
// end also says the page was never reloaded.
const recorder = `(function () {
  var seen = window.__pw = {states: {}, rows: []};
  function look() {
    var now = Date.now();
    var rows = document.querySelector('#services tbody').rows;
    for (var i = 0; i < rows.length; i++) {
      var b = rows[i].querySelector('.badge'), n = rows[i].dataset.service;
      if (!b || !n) continue;
      var h = seen.states[n] || (seen.states[n] = []);
      if (!h.length || h[h.length - 1].state !== b.textContent) h.push({state: b.textContent, at: now});
    }
    var ev = document.querySelectorAll('#events tbody tr');
    for (var j = 0; j < ev.length; j++) {
      var tr = ev[j], c = tr.cells;
      if (tr.dataset.recorded) continue;
      tr.dataset.recorded = '1';
      seen.rows.push({seq: Number(tr.dataset.seq), time: c[0].querySelector('time').dateTime,
        service: c[1].textContent, event: c[2].textContent, cause: c[4].textContent, text: c[5].textContent, at: now});
    }
  }
  look();
  new MutationObserver(look).observe(document.getElementById('status'), {subtree: true, childList: true, characterData: true});
  return true;
})()`

type seenState struct {
	State string  `json:"state"`
	At    float64 `json:"at"` // ms since the epoch, the browser's clock
}

type seenRow struct {
	Seq     uint64  `json:"seq"`
	Time    string  `json:"time"` // the event's, as pcheck stamped it
	Service string  `json:"service"`
	Event   string  `json:"event"`
	Cause   string  `json:"cause"`
	Text    string  `json:"text"`
	At      float64 `json:"at"`
}

type pageLog struct {
	States map[string][]seenState `json:"states"`
	Rows   []seenRow              `json:"rows"`
}

func (b *browser) log(t testing.TB) pageLog {
	t.Helper()
	l := value(t, b, chromedp.Evaluate[pageLog](`window.__pw || {}`))
	if l.States == nil {
		t.Fatal("the page's recorder is gone: the page was reloaded")
	}
	return l
}

// delay is how long after its event the browser showed something.
func delay(t testing.TB, r seenRow, at float64) time.Duration {
	t.Helper()
	when, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		t.Fatalf("event %d's time %q: %v", r.Seq, r.Time, err)
	}
	return time.Duration(at*float64(time.Millisecond)) - time.Duration(when.UnixNano())
}

// TestStatusPageInABrowser drives the status page in headless chromium:
// two services Up; a kill -9 of one, by a process named x<script>, makes
// its row go Down then Up and the events (with the cause, the killer's
// name as text) appear on top of the history, without a reload, each
// within liveWithin of its event's time; the page logs no error, runs no
// script but its own, works without JavaScript and at 320 px wide. It
// leaves screenshots in bin/ (CI keeps them).
func TestStatusPageInABrowser(t *testing.T) {
	testpriv.Root(t)
	b := newBrowser(t)
	sc := newScene(t)
	alpha, beta := newWebService(t, sc.dir, "alpha"), newWebService(t, sc.dir, "beta")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// ebpf: it names the sender of a signal, whose comm the page shows.
	p := startPcheck(t, sc.syslog, sc.dir, "ebpf", "--web-listen", addr, alpha.pfile, beta.pfile)
	pid := p.waitState(t, "alpha", "Up").PIDs[0]
	p.waitState(t, "beta", "Up")

	url := "http://" + addr + "/"
	b.do(t, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#services tbody tr")))
	value(t, b, chromedp.Evaluate[bool](recorder))
	headers := value(t, b, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#services thead th')).map(function (th) { return th.textContent })`))
	value(t, b, chromedp.Poll[bool](`document.getElementById('live').textContent.indexOf('Live:') === 0`))
	if !slices.Contains(headers, "State") || !slices.Contains(headers, "Last death") {
		t.Fatalf("the services table's headers are %q", headers)
	}
	before := b.log(t)
	for _, name := range []string{"alpha", "beta"} {
		if h := before.States[name]; len(h) != 1 || h[0].State != "Up" {
			t.Fatalf("the page shows %s as %+v, want Up", name, h)
		}
	}
	var base uint64
	for _, r := range before.Rows {
		base = max(base, r.Seq)
	}

	killer := filepath.Join(sc.dir, "x<script>")
	copyFile(t, "/usr/bin/kill", killer)
	writeFile(t, alpha.failOnce, "", 0o644)
	if out, err := exec.Command(killer, "-9", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("%s -9 %d: %v\n%s", killer, pid, err, out)
	}
	var l pageLog
	pollUntil(t, "saw the page show alpha Down, then Up, and its up event", func() bool {
		l = b.log(t)
		return wentDownThenUp(l.States["alpha"]) && findRow(l.Rows, base, "up") != nil
	})
	expectLive(t, l, base)
	expectTextOnly(t, b, l, base)
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n\t%s", strings.Join(errs, "\n\t"))
	}
	expectWithoutScript(t, b, url)
	screenshots(t, b)
}

// wentDownThenUp: after the Up it was loaded with, the row showed Down,
// then Up again.
func wentDownThenUp(h []seenState) bool {
	down := slices.IndexFunc(h, func(s seenState) bool { return s.State == "Down" })
	return down > 0 && h[len(h)-1].State == "Up" && len(h)-1 > down
}

// findRow is the first event row after seq base of alpha's event ev.
func findRow(rows []seenRow, base uint64, ev string) *seenRow {
	for i, r := range rows {
		if r.Seq > base && r.Service == "alpha" && r.Event == ev {
			return &rows[i]
		}
	}
	return nil
}

// expectLive checks each event row since base appeared within liveWithin
// of its event, and so did alpha's row leaving Up (after the down event)
// and coming back Up (after the up event).
func expectLive(t *testing.T, l pageLog, base uint64) {
	t.Helper()
	var worst time.Duration
	for _, r := range l.Rows {
		if r.Seq <= base {
			continue
		}
		d := delay(t, r, r.At)
		worst = max(worst, d)
		if d > liveWithin {
			t.Errorf("event %d (%s %s) showed %s after it was logged, want within %s", r.Seq, r.Service, r.Event, d, liveWithin)
		}
	}
	h := l.States["alpha"]
	down, up := findRow(l.Rows, base, "down"), findRow(l.Rows, base, "up")
	if down == nil {
		t.Fatalf("no down event row for alpha after event %d: %+v", base, l.Rows)
	}
	left, back := delay(t, *down, h[1].At), delay(t, *up, h[len(h)-1].At)
	t.Logf("alpha's row: %+v; it left Up %s after the down event and was Up again %s after the up event; slowest event row %s",
		h, left, back, worst)
	if left > liveWithin || back > liveWithin {
		t.Errorf("alpha's row changed %s after the down event and %s after the up event, want within %s", left, back, liveWithin)
	}
}

// expectTextOnly: the killer's name, x<script>, shows as text in the
// ending's event row and in alpha's last death; no script but the page's
// own is in the document.
func expectTextOnly(t *testing.T, b *browser, l pageLog, base uint64) {
	t.Helper()
	ended := findRow(l.Rows, base, "ended")
	if ended == nil || ended.Cause != "signal" || !strings.Contains(ended.Text, "(x<script>, uid 0)") {
		t.Errorf("the ending's event row is %+v; want cause signal and the killer x<script> as text", ended)
	}
	scripts := value(t, b, chromedp.Evaluate[int](`document.scripts.length`))
	death := value(t, b, chromedp.Evaluate[string](`(function () {
	  var rows = document.querySelector('#services tbody').rows;
	  for (var i = 0; i < rows.length; i++) if (rows[i].dataset.service === 'alpha') return rows[i].querySelector('td.death').textContent;
	  return '';
	})()`))
	if scripts != 1 || !strings.Contains(death, "signal: killed by signal 9 (SIGKILL), sent by pid") || !strings.Contains(death, "(x<script>, uid 0)") {
		t.Errorf("%d script elements (want the page's one); alpha's last death reads %q", scripts, death)
	}
}

// expectWithoutScript loads ?service=alpha in a tab with JavaScript off:
// the server's page alone shows alpha's events, and not beta's.
func expectWithoutScript(t *testing.T, b *browser, url string) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // opens the tab (no timeout: it would close it)
		t.Fatalf("chromium: a new tab: %v", err)
	}
	tab := &browser{ctx: ctx}
	scripts := func(off bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			_, err := cdp.Call(ctx, tgt, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: off})
			return err
		})
	}
	// The page loads with JavaScript off; it is turned back on for the
	// test's own reading of the DOM, too late for the page's script (run
	// once, as the page is parsed).
	tab.do(t, scripts(true), chromedp.Navigate(url+"?service=alpha"), scripts(false))
	events := value(t, tab, chromedp.Text(chromedp.CSS("#events tbody")))
	services := value(t, tab, chromedp.Text(chromedp.CSS("#services tbody")))
	if live := value(t, tab, chromedp.Text(chromedp.CSS("#live"))); live != "Reload the page to see changes." {
		t.Errorf("without JavaScript the page says %q", live)
	}
	if !strings.Contains(events, "(x<script>, uid 0)") || strings.Contains(events, "'beta'") || !strings.Contains(services, "beta") {
		t.Errorf("without JavaScript, ?service=alpha shows the events:\n%s\nand the services:\n%s", events, services)
	}
}

// screenshots saves the page at 1280 and at 320 px wide in bin/, and
// checks that at 320 px the page itself does not scroll sideways (only
// the tables' own boxes do).
func screenshots(t *testing.T, b *browser) {
	t.Helper()
	dir := filepath.Join(repoRoot(), "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wide := value(t, b, chromedp.FullScreenshot(100))
	b.do(t, chromedp.EmulateViewport(320, 800))
	width := value(t, b, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	narrow := value(t, b, chromedp.FullScreenshot(100))
	if width > 320 {
		t.Errorf("at 320 px wide the page is %d px wide", width)
	}
	for name, png := range map[string][]byte{"status-page.png": wide, "status-page-320.png": narrow} {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: bin/%s", name)
	}
}
