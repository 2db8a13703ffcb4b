// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHealthFollowsServices(t *testing.T) {
	src := &fakeSource{}
	base := serve(t, HealthHandler(src), nil)

	expect := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, hdr, body := get(t, http.MethodGet, base+path)
		if code != wantCode || body != wantBody {
			t.Errorf("GET %s: %d %q, want %d %q", path, code, body, wantCode, wantBody)
		}
		if cc := hdr.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
		}
	}

	// No services yet: nothing is served, so the node is out.
	expect("/healthz", 503, "no services\n")
	expect("/healthz/web", 404, "no such service\n")

	src.set(state("web", "Up"))
	src.set(state("db", "Up"))
	expect("/healthz", 200, "ok\n")
	expect("/healthz/web", 200, "web Up\n")

	// web dies and recovers: the node goes out and comes back in.
	src.set(state("web", "Down"))
	expect("/healthz", 503, "web Down\n")
	expect("/healthz/web", 503, "web Down\n")
	expect("/healthz/db", 200, "db Up\n")
	src.set(state("web", "Restarting"))
	src.set(state("db", "Paused"))
	expect("/healthz", 503, "web Restarting\ndb Paused\n")
	src.set(state("web", "Up"))
	src.set(state("db", "Up"))
	expect("/healthz", 200, "ok\n")
	expect("/healthz/web", 200, "web Up\n")

	expect("/healthz/nosuch", 404, "no such service\n")
	if code, _, _ := get(t, http.MethodGet, base+"/healthz/web/more"); code != 404 {
		t.Errorf("GET /healthz/web/more: %d, want 404", code)
	}
}

func TestHealthMethods(t *testing.T) {
	src := &fakeSource{}
	src.set(state("web", "Up"))
	src.set(state("db", "RetryOver"))
	base := serve(t, HealthHandler(src), nil)

	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodHead, "/healthz", 503},
		{http.MethodHead, "/healthz/web", 200},
		{http.MethodHead, "/healthz/db", 503},
		{http.MethodPost, "/healthz", 405},
		{http.MethodDelete, "/healthz/web", 405},
	} {
		code, hdr, body := get(t, tc.method, base+tc.path)
		if code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.code)
		}
		if tc.method == http.MethodHead && body != "" {
			t.Errorf("HEAD %s: body %q", tc.path, body)
		}
		if code == 405 && !strings.Contains(hdr.Get("Allow"), "GET") {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, hdr.Get("Allow"))
		}
	}
}

// Metrics and health may share one listener (--metrics-listen and
// --health-listen given the same address).
func TestOneListenerForBoth(t *testing.T) {
	src := &fakeSource{}
	src.set(state("web", "Up"))
	mux := http.NewServeMux()
	mux.Handle("/metrics", New(src, Options{}).Handler())
	h := HealthHandler(src)
	mux.Handle("/healthz", h)
	mux.Handle("/healthz/", h)
	base := serve(t, mux, nil)
	if code, _, _ := get(t, http.MethodGet, base+"/healthz/web"); code != 200 {
		t.Errorf("GET /healthz/web: %d", code)
	}
	mustValue(t, scrape(t, base), 1, "pwatch_service_up", "service", "web")
}

// A failing probe shows before it is a stall: /healthz/NAME says so with
// 200 (the service is Up), its strict variant with 503, and so does
// /healthz?strict. A starting block is not answering yet either.
func TestHealthReportsFailingChecks(t *testing.T) {
	src := &fakeSource{}
	base := serve(t, HealthHandler(src), nil)
	expect := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, _, body := get(t, http.MethodGet, base+path)
		if code != wantCode || body != wantBody {
			t.Errorf("GET %s: %d %q, want %d %q", path, code, body, wantCode, wantBody)
		}
	}
	since := time.Date(2025, 5, 24, 9, 40, 0, 0, time.UTC)
	web := state("web", "Up")
	web.Checks = []Check{{Block: "_bi_webserv", State: "ok"}}
	src.set(web)
	expect("/healthz/web?strict=1", 200, "web Up\n")
	expect("/healthz?strict", 200, "ok\n")

	web.Checks = []Check{{Block: "_bi_webserv", State: "failing", FailingSince: since}}
	src.set(web)
	failing := "web Up\nweb check _bi_webserv failing since 2025-05-24T09:40:00Z\n"
	expect("/healthz/web", 200, failing)
	expect("/healthz/web?strict=1", 503, failing)
	expect("/healthz/web?strict=true", 503, failing)
	expect("/healthz/web?strict=0", 200, failing)
	expect("/healthz", 200, "ok\n")
	expect("/healthz?strict", 503, "web check _bi_webserv failing since 2025-05-24T09:40:00Z\n")

	web.Checks = []Check{{Block: "_bi_webserv", State: "starting"}}
	src.set(web)
	expect("/healthz/web?strict", 503, "web Up\nweb check _bi_webserv starting\n")

	expect("/healthz/web?strict=maybe", 400, "strict=\"maybe\": want 1, true, 0 or false\n")
	expect("/healthz?strict=2", 400, "strict=\"2\": want 1, true, 0 or false\n")
}
