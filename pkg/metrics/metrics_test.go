// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pwatch/pwatch/internal/syncbuf"
)

var reasons = []string{"down", "stall", "socket", "start"}

// scrape GETs /metrics from base and parses the text exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, hdr, body := get(t, http.MethodGet, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return fams
}

// value is the value of family's series whose labels are exactly labels
// (name=value pairs); ok is false when there is no such series.
func value(fams map[string]*dto.MetricFamily, family string, labels ...string) (float64, bool) {
	f := fams[family]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, want float64, family string, labels ...string) {
	t.Helper()
	got, ok := value(fams, family, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", family, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", family, labels, got, want)
	}
}

func mustAbsent(t *testing.T, fams map[string]*dto.MetricFamily, family string, labels ...string) {
	t.Helper()
	if v, ok := value(fams, family, labels...); ok {
		t.Errorf("%s%v = %v, want no series", family, labels, v)
	}
}

func TestScrapeOverLoopback(t *testing.T) {
	reboots := 2
	src := &fakeSource{backend: "ebpf", bpf: &BPFStats{Received: 1234, Lost: 5, Rescans: 1}, reboots: &reboots}
	web := state("apache2", "Up")
	web.RestartsInGrace = 1
	web.Sockets = []Socket{{Port: 80, Queue: 3, Backlog: 511}, {Port: 443, Queue: 0, Backlog: 128}}
	src.set(web)
	src.set(state("nginx", "Restarting"))
	m := New(src, Options{RestartReasons: reasons})
	m.Restart("nginx", "down")
	m.Restart("nginx", "down")
	m.Restart("nginx", "stall")
	m.Stall("nginx")
	m.ObserveProbe("apache2", "_bi_webserv", 3*time.Millisecond, true)
	m.ObserveProbe("apache2", "_bi_webserv", 4*time.Millisecond, true)
	m.ObserveProbe("apache2", "_bi_webserv", 5*time.Second, false)
	base := serve(t, m.Handler(), nil)

	fams := scrape(t, base)
	mustValue(t, fams, 1, "pwatch_service_up", "service", "apache2")
	mustValue(t, fams, 0, "pwatch_service_up", "service", "nginx")
	for _, st := range States {
		want := 0.0
		if st == "Restarting" {
			want = 1
		}
		mustValue(t, fams, want, "pwatch_service_state", "service", "nginx", "state", st)
	}
	mustValue(t, fams, 1, "pwatch_service_state", "service", "apache2", "state", "Up")
	mustValue(t, fams, 1, "pwatch_service_processes", "service", "apache2")
	mustValue(t, fams, 1, "pwatch_service_restarts_in_grace", "service", "apache2")
	mustValue(t, fams, 2, "pwatch_restarts_total", "service", "nginx", "reason", "down")
	mustValue(t, fams, 1, "pwatch_restarts_total", "service", "nginx", "reason", "stall")
	mustValue(t, fams, 0, "pwatch_restarts_total", "service", "nginx", "reason", "socket")
	for _, r := range reasons { // shown at 0 before the first restart
		mustValue(t, fams, 0, "pwatch_restarts_total", "service", "apache2", "reason", r)
	}
	mustValue(t, fams, 1, "pwatch_stalls_total", "service", "nginx")
	mustValue(t, fams, 0, "pwatch_stalls_total", "service", "apache2")
	mustValue(t, fams, 2, "pwatch_probe_duration_seconds", "service", "apache2", "check", "_bi_webserv", "result", "ok")
	mustValue(t, fams, 1, "pwatch_probe_duration_seconds", "service", "apache2", "check", "_bi_webserv", "result", "fail")
	mustValue(t, fams, 3, "pwatch_accept_queue_length", "service", "apache2", "port", "80")
	mustValue(t, fams, 511, "pwatch_accept_queue_backlog", "service", "apache2", "port", "80")
	mustValue(t, fams, 128, "pwatch_accept_queue_backlog", "service", "apache2", "port", "443")
	mustAbsent(t, fams, "pwatch_accept_queue_length", "service", "nginx", "port", "80")
	mustValue(t, fams, 1, "pwatch_watcher_info", "backend", "ebpf")
	mustValue(t, fams, 1234, "pwatch_bpf_ringbuf_events_total")
	mustValue(t, fams, 5, "pwatch_bpf_ringbuf_lost_total")
	mustValue(t, fams, 1, "pwatch_bpf_rescans_total")
	mustValue(t, fams, 2, "pwatch_reboots_in_window")

	// The probe histogram's buckets: the two fast probes fall in the 5 ms
	// bucket, the slow failure only in the 5 s one.
	for _, h := range fams["pwatch_probe_duration_seconds"].GetMetric() {
		if h.GetHistogram().GetSampleCount() != 2 {
			continue
		}
		for _, b := range h.GetHistogram().GetBucket() {
			if b.GetUpperBound() == .005 && b.GetCumulativeCount() != 2 {
				t.Errorf("le=0.005 bucket = %d, want 2", b.GetCumulativeCount())
			}
			if b.GetUpperBound() == .0025 && b.GetCumulativeCount() != 0 {
				t.Errorf("le=0.0025 bucket = %d, want 0", b.GetCumulativeCount())
			}
		}
	}
	for _, fam := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[fam] == nil {
			t.Errorf("%s missing: the Go and process collectors are not registered", fam)
		}
	}
}

// A Source that knows its logger reports the syslog lines it dropped;
// one that does not leaves the series out.
func TestSyslogDroppedIsScraped(t *testing.T) {
	src := &loggingSource{dropped: 7}
	fams := scrape(t, serve(t, New(src, Options{}).Handler(), nil))
	mustValue(t, fams, 7, "pwatch_syslog_dropped_total")
	fams = scrape(t, serve(t, New(&fakeSource{}, Options{}).Handler(), nil))
	mustAbsent(t, fams, "pwatch_syslog_dropped_total")
}

type loggingSource struct {
	fakeSource
	dropped uint64
}

func (l *loggingSource) SyslogDropped() uint64 { return l.dropped }

func TestScrapeFollowsStateChanges(t *testing.T) {
	src := &fakeSource{}
	src.set(state("web", "Up"))
	m := New(src, Options{})
	base := serve(t, m.Handler(), nil)

	fams := scrape(t, base)
	mustValue(t, fams, 1, "pwatch_service_up", "service", "web")
	// Other backends: no BPF or watcher series, no reboot guard.
	for _, fam := range []string{"pwatch_watcher_info", "pwatch_bpf_ringbuf_events_total", "pwatch_bpf_ringbuf_lost_total", "pwatch_reboots_in_window"} {
		if fams[fam] != nil {
			t.Errorf("%s present without a source for it", fam)
		}
	}
	// No reasons given: no restart series until the first restart.
	mustAbsent(t, fams, "pwatch_restarts_total", "service", "web", "reason", "down")

	src.set(state("web", "Stalled"))
	m.Stall("web")
	m.Restart("web", "stall")
	fams = scrape(t, base)
	mustValue(t, fams, 0, "pwatch_service_up", "service", "web")
	mustValue(t, fams, 1, "pwatch_service_state", "service", "web", "state", "Stalled")
	mustValue(t, fams, 0, "pwatch_service_state", "service", "web", "state", "Up")
	mustValue(t, fams, 1, "pwatch_stalls_total", "service", "web")
	mustValue(t, fams, 1, "pwatch_restarts_total", "service", "web", "reason", "stall")

	src.set(state("web", "Up"))
	fams = scrape(t, base)
	mustValue(t, fams, 1, "pwatch_service_up", "service", "web")
	mustValue(t, fams, 1, "pwatch_stalls_total", "service", "web") // counters keep counting
}

func TestRemovedServiceLeavesTheScrape(t *testing.T) {
	src := &fakeSource{}
	src.set(state("a", "Up"))
	src.set(state("b", "Up"))
	m := New(src, Options{RestartReasons: reasons})
	m.Restart("b", "down")
	m.ObserveProbe("b", "tcp1", time.Millisecond, true)
	m.ObserveProbe("a", "tcp1", time.Millisecond, true)
	base := serve(t, m.Handler(), nil)

	src.remove("b")
	m.Forget("b")
	fams := scrape(t, base)
	for _, fam := range []string{"pwatch_service_up", "pwatch_service_state", "pwatch_restarts_total", "pwatch_stalls_total", "pwatch_probe_duration_seconds"} {
		for _, s := range fams[fam].GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == "b" {
					t.Errorf("%s still has a series of the removed service", fam)
				}
			}
		}
	}
	mustValue(t, fams, 1, "pwatch_probe_duration_seconds", "service", "a", "check", "tcp1", "result", "ok")

	// Added again, it starts from zero.
	src.set(state("b", "Up"))
	fams = scrape(t, base)
	mustValue(t, fams, 0, "pwatch_restarts_total", "service", "b", "reason", "down")
}

func TestBadInputDoesNotBreakTheScrape(t *testing.T) {
	src := &fakeSource{}
	src.set(state("good", "Up"))
	src.set(state("good", "Up")) // set replaces; add a duplicate by hand
	src.services = append(src.services, state("good", "Down"))
	src.set(state("bad\xff", "Up"))
	src.set(ServiceState{Name: "odd", State: "Unknown", Sockets: []Socket{{Port: 80}, {Port: 80}}})
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	m := New(src, Options{Logger: log})
	m.ObserveProbe("bad\xff", "c", time.Millisecond, true) // dropped, logged
	m.Restart("bad\xff", "down")
	base := serve(t, m.Handler(), nil)

	fams := scrape(t, base)
	mustValue(t, fams, 1, "pwatch_service_up", "service", "good") // the first of the duplicates
	mustValue(t, fams, 1, "pwatch_service_state", "service", "odd", "state", "Unknown")
	mustValue(t, fams, 0, "pwatch_service_state", "service", "odd", "state", "Up")
	mustValue(t, fams, 0, "pwatch_accept_queue_length", "service", "odd", "port", "80")
	if !strings.Contains(logs.String(), "probe metric dropped") {
		t.Errorf("the dropped probe was not logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "pwatch_service_up") {
		t.Errorf("the invalid series was not logged as a scrape error:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "metrics scrape error"); n != 1 {
		t.Errorf("%d scrape errors logged for one scrape, want one line:\n%s", n, logs.String())
	}
}

func TestNilMetricsIsOff(t *testing.T) {
	var m *Metrics
	m.ObserveProbe("s", "c", time.Second, true)
	m.Restart("s", "down")
	m.Stall("s")
	m.Forget("s")
}

func TestMetricsHandlerMethodsAndPaths(t *testing.T) {
	m := New(&fakeSource{}, Options{})
	base := serve(t, m.Handler(), nil)
	if code, _, body := get(t, http.MethodHead, base+"/metrics"); code != http.StatusOK || body != "" {
		t.Errorf("HEAD /metrics: %d %q", code, body)
	}
	if code, _, _ := get(t, http.MethodPost, base+"/metrics"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", code)
	}
	if code, _, _ := get(t, http.MethodGet, base+"/"); code != http.StatusNotFound {
		t.Errorf("GET /: %d, want 404", code)
	}
}

func TestMetricNamesPassLint(t *testing.T) {
	src := &fakeSource{backend: "ebpf", bpf: &BPFStats{}, reboots: new(int)}
	s := state("web", "Up")
	s.Sockets = []Socket{{Port: 80}}
	src.set(s)
	m := New(src, Options{RestartReasons: reasons})
	m.ObserveProbe("web", "c", time.Millisecond, true)
	m.Death("web", "exit")
	m.Restart("web", "down")
	m.LimitRestart("web", "memory_max")
	_, _, body := get(t, http.MethodGet, serve(t, m.Handler(), nil)+"/metrics")
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	for _, p := range problems { // go_* and process_* included
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestListenRefusesATakenPort(t *testing.T) {
	base := serve(t, http.NotFoundHandler(), nil)
	addr := strings.TrimPrefix(base, "http://")
	if srv, err := Listen(addr, http.NotFoundHandler(), slog.Default(), 0); err == nil {
		srv.Close()
		t.Fatalf("Listen(%s) twice: no error", addr)
	}
}

func TestCloseStopsServing(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", New(&fakeSource{}, Options{}).Handler(), slog.Default(), 0)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr().String() + "/metrics"
	if code, _, _ := get(t, http.MethodGet, url); code != http.StatusOK {
		t.Fatalf("before Close: %d", code)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("still serving after Close")
	}
}

// syncBuffer is written concurrently while the test reads it.
type syncBuffer = syncbuf.Buffer

// The retry budget: attempts left, what is due and when, retry overs.
func TestScrapeShowsTheRetryBudget(t *testing.T) {
	src := &fakeSource{}
	db := state("db", "RetryOver")
	db.Next, db.NextIn = "rearm", 90*time.Second
	web := state("web", "Down")
	web.AttemptsLeft, web.Next, web.NextIn = 2, "attempt", 1500*time.Millisecond
	src.set(db)
	src.set(web)
	src.set(state("up", "Up"))
	m := New(src, Options{RestartReasons: reasons})
	m.RetryOver("db")
	m.RetryOver("db")
	fams := scrape(t, serve(t, m.Handler(), nil))
	mustValue(t, fams, 90, "pwatch_service_next_attempt_seconds", "service", "db", "what", "rearm")
	mustValue(t, fams, 1.5, "pwatch_service_next_attempt_seconds", "service", "web", "what", "attempt")
	mustAbsent(t, fams, "pwatch_service_next_attempt_seconds", "service", "up", "what", "attempt")
	mustValue(t, fams, 2, "pwatch_service_attempts_left", "service", "web")
	mustValue(t, fams, 0, "pwatch_service_attempts_left", "service", "db")
	mustValue(t, fams, 2, "pwatch_retry_overs_total", "service", "db")
	mustValue(t, fams, 0, "pwatch_retry_overs_total", "service", "web")
	m.Forget("db")
	src.set(state("db", "Up"))
	mustValue(t, scrape(t, serve(t, m.Handler(), nil)), 0, "pwatch_retry_overs_total", "service", "db")
}
