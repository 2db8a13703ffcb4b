// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// fakeStatus answers as the daemon does: all services, or the one named.
type fakeStatus []control.ServiceStatus

func (f fakeStatus) Status(_ context.Context, name string) ([]control.ServiceStatus, error) {
	if name == "" {
		return f, nil
	}
	for _, s := range f {
		if s.Name == name {
			return []control.ServiceStatus{s}, nil
		}
	}
	return nil, fmt.Errorf("no service %q is watched", name)
}

func stamp0() events.Stamp {
	return events.Stamp{Time: time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC), SinceBoot: time.Hour}
}

// rig is a page on two services, web (Up) and db (Down, killed by a
// process whose name is markup), with a few events.
type rig struct {
	hub  *events.Hub
	page *Page
	srv  *httptest.Server
}

const hostileComm = `x<script>alert(1)</script>`

func newRig(t *testing.T, o Options) *rig {
	t.Helper()
	hub := events.NewHub(events.DefaultKeep, stamp0)
	in, mem, cpu, fds := 3.5, uint64(412<<20+512<<10), 12.0, 88
	status := fakeStatus{
		{Name: "db", State: "Down", PIDs: []int{}, NextAttemptIn: &in, AttemptsLeft: 2, Restarts: 1,
			LastDeath: &control.Death{Time: stamp0().Time, Cause: "signal", Text: "killed by signal 9 (SIGKILL), sent by pid 7 (" + hostileComm + ", uid 0)"}},
		{Name: "web", State: "Up", PIDs: []int{412, 413}, UptimeSeconds: 3725, AttemptsLeft: 3,
			Checks: []control.CheckStatus{{Block: "_bi_webserv", State: "ok"}}, Usage: &control.Usage{MemoryBytes: &mem, CPUPercent: &cpu, FDs: &fds}},
	}
	o.Status, o.Events = status, hub
	if o.MaxStreams == 0 {
		o.MaxStreams = 8
	}
	r := &rig{hub: hub, page: New(o)}
	r.srv = httptest.NewServer(r.page)
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.page.Close)
	return r
}

func (r *rig) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return r.do(t, http.MethodGet, path, hdr...)
}

func (r *rig) do(t *testing.T, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, r.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestPageEscapesWhatProcessesWrote(t *testing.T) {
	r := newRig(t, Options{Host: "node<b>1"})
	r.hub.Record(msg.Message{Text: "Process ended ('db', pid= 9) " + hostileComm, Attrs: nil})
	r.hub.Publish(events.Event{Event: "ended", Service: "db", Text: `<img src=x onerror=alert(2)>`, Fields: map[string]string{"cause": "<b>signal</b>"}})
	resp, body := r.get(t, "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, raw := range []string{"<script>alert", "<img src=x", "<b>signal", "node<b>1"} {
		if strings.Contains(body, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	for _, esc := range []string{"x&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", "&lt;b&gt;signal&lt;/b&gt;", "node&lt;b&gt;1"} {
		if !strings.Contains(body, esc) {
			t.Errorf("the page lacks %q (escaped text)", esc)
		}
	}
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d script elements, want the page's one", n)
	}
}

func TestPageShowsTheStatusInWords(t *testing.T) {
	r := newRig(t, Options{})
	_, body := r.get(t, "/")
	for _, want := range []string{
		`<th scope="col">State</th>`, `<th scope="col">Attempts left</th>`,
		`<tr data-service="web" class="state-up"><th scope="row"><a href="/?service=web">web</a></th><td class="state"><span class="badge">Up</span></td><td>412, 413</td><td>1h02m</td>`,
		`<span class="badge">Down</span>`, "attempt 4s", `<td>ok</td>`, `<td>412.5MiB, 12% CPU, 88 fds</td>`, `<th scope="col">Resources</th>`, "signal: killed by signal 9 (SIGKILL)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<form method=\"post\"") || strings.Contains(strings.ToLower(body), "method=\"post\"") {
		t.Error("the page has a form that posts")
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	r := newRig(t, Options{})
	for _, path := range []string{"/", "/events", "/status.json", "/row?service=web", "/static/status.js", "/nowhere"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			resp, _ := r.do(t, m, path)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %s, Allow %q; want 405, GET, HEAD", m, path, resp.Status, resp.Header.Get("Allow"))
			}
		}
	}
	resp, body := r.do(t, http.MethodHead, "/")
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /: %s, %d bytes", resp.Status, len(body))
	}
}

func TestStrictHeaders(t *testing.T) {
	r := newRig(t, Options{})
	for _, path := range []string{"/", "/static/status.js", "/static/status.css", "/row?service=web", "/status.json"} {
		resp, _ := r.get(t, path)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != http.StatusOK || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
			strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %s, CSP %q, nosniff %q", path, resp.Status, csp, resp.Header.Get("X-Content-Type-Options"))
		}
	}
	for _, path := range []string{"/static/", "/static/nothing.js", "/index.html"} {
		if resp, _ := r.get(t, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
	// nosniff makes the browser refuse a script or stylesheet served with
	// the wrong type.
	for path, want := range map[string]string{"/static/status.js": "text/javascript", "/static/status.css": "text/css"} {
		if resp, _ := r.get(t, path); !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, resp.Header.Get("Content-Type"), want)
		}
	}
}

func TestFilterByService(t *testing.T) {
	r := newRig(t, Options{})
	r.hub.Record(msg.Down("db", 9))
	r.hub.Record(msg.Up("web", 412))
	r.hub.Record(msg.TryRestart("db", "down", 1))
	_, body := r.get(t, "/?service=db")
	text := func(m msg.Message) string { return html.EscapeString(m.Text) }
	if strings.Contains(body, text(msg.Up("web", 412))) {
		t.Error("?service=db shows web's event")
	}
	down, restart := strings.Index(body, text(msg.Down("db", 9))), strings.Index(body, text(msg.TryRestart("db", "down", 1)))
	if down < 0 || restart < 0 || restart > down {
		t.Errorf("db's events missing or not newest first (restart at %d, down at %d)", restart, down)
	}
	if !strings.Contains(body, `<option value="db" selected>db</option>`) || !strings.Contains(body, `data-service="db"`) {
		t.Error("the filter form does not show db chosen")
	}
	// The stream resumes after the newest event of all, whatever the filter.
	if !strings.Contains(body, `data-after="3"`) {
		t.Error("the page does not resume its stream after event 3")
	}
	_, all := r.get(t, "/")
	if !strings.Contains(all, text(msg.Up("web", 412))) || !strings.Contains(all, text(msg.Down("db", 9))) {
		t.Error("the unfiltered page lacks events")
	}
}

func TestRowAndStatusJSON(t *testing.T) {
	r := newRig(t, Options{})
	resp, row := r.get(t, "/row?service=web")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(row, `<tr data-service="web"`) || strings.Count(row, "<tr") != 1 {
		t.Fatalf("row: %s %q", resp.Status, row)
	}
	if resp, _ := r.get(t, "/row?service=nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("row of no service: %s", resp.Status)
	}
	resp, body := r.get(t, "/status.json?service=db")
	var got []control.ServiceStatus
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != http.StatusOK || len(got) != 1 || got[0].State != "Down" {
		t.Fatalf("status.json: %s %v %q", resp.Status, err, body)
	}
}

// sseReader reads one event stream.
type sseReader struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func (r *rig) stream(t *testing.T, path string, hdr ...string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %s %q", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	return &sseReader{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// frame reads the next frame's lines (up to its blank line).
func (s *sseReader) frame() []string {
	s.t.Helper()
	var lines []string
	for s.sc.Scan() {
		if s.sc.Text() == "" {
			return lines
		}
		lines = append(lines, s.sc.Text())
	}
	s.t.Fatalf("stream ended (%v) amid %q", s.sc.Err(), lines)
	return nil
}

// event reads frames up to the next event, and checks its framing.
func (s *sseReader) event() events.Event {
	s.t.Helper()
	for {
		f := s.frame()
		if len(f) == 0 || strings.HasPrefix(f[0], ":") || strings.HasPrefix(f[0], "retry:") {
			continue
		}
		var e events.Event
		if len(f) != 2 || !strings.HasPrefix(f[0], "id: ") || !strings.HasPrefix(f[1], "data: ") {
			s.t.Fatalf("frame %q: want an id line and one data line", f)
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(f[1], "data: ")), &e); err != nil {
			s.t.Fatalf("frame %q: %v", f, err)
		}
		if f[0] != fmt.Sprintf("id: %d", e.Seq) {
			s.t.Fatalf("frame %q: the id is not the event's seq", f)
		}
		return e
	}
}

func TestEventStreamFraming(t *testing.T) {
	r := newRig(t, Options{})
	s := r.stream(t, "/events")
	if f := s.frame(); len(f) != 1 || f[0] != "retry: 1000" {
		t.Fatalf("first frame %q, want the retry delay", f)
	}
	// A text with newlines cannot end the frame or add a field.
	r.hub.Publish(events.Event{Event: "ended", Service: "db", Text: "a\n\ndata: forged\nid: 99"})
	e := s.event()
	if e.Seq != 1 || e.Text != "a\n\ndata: forged\nid: 99" || e.Service != "db" {
		t.Fatalf("event %+v", e)
	}
	r.hub.Record(msg.Up("web", 5))
	if e := s.event(); e.Seq != 2 || e.Event != "up" || e.PID != 5 {
		t.Fatalf("event %+v", e)
	}
}

func TestEventStreamResumes(t *testing.T) {
	r := newRig(t, Options{})
	for i := 1; i <= 4; i++ {
		r.hub.Record(msg.Down("web", i))
	}
	r.hub.Record(msg.Down("db", 50))
	// Without a point to resume from, the history is not replayed.
	fresh := r.stream(t, "/events")
	// A reconnecting EventSource sends the last id it had; it wins over
	// ?after= (the URL the page first opened).
	resumed := r.stream(t, "/events?after=1", "Last-Event-ID", "2")
	onlyDB := r.stream(t, "/events?service=db&after=0")
	for _, want := range []int{3, 4, 50} {
		if e := resumed.event(); e.PID != want {
			t.Fatalf("resumed stream sent pid %d, want %d", e.PID, want)
		}
	}
	r.hub.Record(msg.Up("web", 60))
	if e := resumed.event(); e.PID != 60 || e.Seq != 6 {
		t.Fatalf("resumed stream then sent %+v, want the new event 6", e)
	}
	if e := fresh.event(); e.Seq != 6 {
		t.Fatalf("fresh stream sent %+v first, want the new event 6", e)
	}
	r.hub.Record(msg.Up("db", 61))
	if e := onlyDB.event(); e.PID != 50 {
		t.Fatalf("db's stream sent %+v, want db's kept event first", e)
	}
	if e := onlyDB.event(); e.PID != 61 {
		t.Fatalf("db's stream sent %+v, want db's new event", e)
	}
	// An id beyond the newest kept is from an earlier history (pcheck
	// restarted, its numbers began again): everything kept is new to it.
	reset := r.stream(t, "/events", "Last-Event-ID", "9000")
	if e := reset.event(); e.Seq != 1 {
		t.Fatalf("a stream resuming after 9000 of 7 sent %+v first, want event 1", e)
	}
	if resp, body := r.get(t, "/events", "Last-Event-ID", "x1"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Last-Event-ID") {
		t.Errorf("a bad Last-Event-ID: %s %q", resp.Status, body)
	}
}

// waitFor polls cond (the handler's end is asynchronous to the client's).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("never %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGoneClientClosesItsSubscription(t *testing.T) {
	r := newRig(t, Options{MaxStreams: 1})
	s := r.stream(t, "/events")
	s.frame()
	if resp, _ := r.get(t, "/events"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second stream beyond MaxStreams 1: %s", resp.Status)
	}
	if n := r.page.streams.subscribers(); n != 1 {
		t.Fatalf("%d subscriptions with one stream open", n)
	}
	s.resp.Body.Close() // the client goes, without a word
	waitFor(t, "saw the subscription closed", func() bool { return r.page.streams.subscribers() == 0 })
	again := r.stream(t, "/events")
	r.hub.Record(msg.Up("web", 1))
	if e := again.event(); e.PID != 1 {
		t.Fatalf("the new stream sent %+v", e)
	}
}

func TestSlowReaderIsCutAndResumes(t *testing.T) {
	r := newRig(t, Options{})
	s := r.stream(t, "/events?after=0")
	s.frame() // retry: the handler waits on its subscription now
	// More than the stream's buffer at once: the subscription loses some,
	// and the stream ends after the events it had, so that the browser
	// reconnects from the last one it got.
	for i := 1; i <= streamBuffer*4; i++ {
		r.hub.Record(msg.Up("web", i))
	}
	last := 0
	for s.sc.Scan() {
		if l := s.sc.Text(); strings.HasPrefix(l, "id: ") {
			fmt.Sscanf(l, "id: %d", &last)
		}
	}
	if last == 0 || last >= streamBuffer*4 {
		t.Fatalf("the stream ended after event %d; want it cut before the last (%d)", last, streamBuffer*4)
	}
	resumed := r.stream(t, "/events", "Last-Event-ID", fmt.Sprint(last))
	if e := resumed.event(); e.Seq != uint64(last+1) {
		t.Fatalf("resumed with event %d, want %d", e.Seq, last+1)
	}
}

func TestStreamOutlivesTheServerTimeouts(t *testing.T) {
	o := Options{Heartbeat: 50 * time.Millisecond}
	hub := events.NewHub(10, stamp0)
	o.Status, o.Events = fakeStatus{}, hub
	page := New(o)
	srv := httptest.NewUnstartedServer(page)
	// As metrics.Listen's timeouts, shortened: they are meant for whole
	// answers, and a stream lasts.
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	srv.Start()
	defer srv.Close()
	defer page.Close()
	r := &rig{hub: hub, page: page, srv: srv}
	s := r.stream(t, "/events")
	beats := 0
	for start := time.Now(); time.Since(start) < time.Second; {
		if f := s.frame(); len(f) == 1 && f[0] == ": still here" {
			beats++
		}
	}
	hub.Record(msg.Up("web", 7))
	if e := s.event(); e.PID != 7 || beats < 5 {
		t.Fatalf("after 1 s: event %+v, %d heartbeats", e, beats)
	}
}

func TestCloseEndsTheStreams(t *testing.T) {
	r := newRig(t, Options{})
	s := r.stream(t, "/events")
	s.frame()
	r.page.Close()
	for s.sc.Scan() {
	}
	if resp, _ := r.get(t, "/events"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a stream after Close: %s", resp.Status)
	}
}

// BenchmarkPage builds the page over a full history (1,000 events) and 100
// services: what one browser's load costs pcheck.
func BenchmarkPage(b *testing.B) {
	hub := events.NewHub(events.DefaultKeep, stamp0)
	var status fakeStatus
	for i := range 100 {
		name := fmt.Sprintf("svc%03d", i)
		status = append(status, control.ServiceStatus{Name: name, State: "Up", PIDs: []int{1000 + i}, UptimeSeconds: 3600, AttemptsLeft: 3})
	}
	for i := range events.DefaultKeep {
		hub.Record(msg.Down(status[i%100].Name, 2000+i))
	}
	page := New(Options{Status: status, Events: hub})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		page.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
}
