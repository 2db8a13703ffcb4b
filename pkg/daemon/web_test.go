// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// TestStatusPageListener: --web-listen serves the page from padmin
// status's source, under --http-max-conns (its event streams take half
// the places, so the page still answers while they are open), read-only,
// and an open stream does not hold pcheck's stop up.
func TestStatusPageListener(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	newFakeService(t, work, pfiles, "alpha", "")
	addr := freeAddr(t)
	p := startPcheck(t, pfiles, func(c *Config) { c.WebListen, c.HTTPMaxConns = addr, 2 })
	p.waitStatus(t, "alpha started", upWith("alpha", 0))
	base := "http://" + addr

	body := waitHTTP(t, base+"/", 200)
	if !strings.Contains(body, `<tr data-service="alpha" class="state-up">`) || !strings.Contains(body, "Try to restart (&#39;alpha&#39;)") {
		t.Fatalf("the page lacks alpha Up or its start event:\n%s", body)
	}
	stream, err := http.Get(base + "/events")
	if err != nil || stream.StatusCode != 200 || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %v %+v", err, stream)
	}
	defer stream.Body.Close()
	if l, err := bufio.NewReader(stream.Body).ReadString('\n'); err != nil || l != "retry: 1000\n" {
		t.Fatalf("the stream began %q, %v", l, err)
	}
	if code, _ := get(t, base+"/events"); code != http.StatusServiceUnavailable {
		t.Errorf("a second stream with --http-max-conns 2: %d, want 503", code)
	}
	if code, _ := get(t, base+"/status.json"); code != 200 {
		t.Errorf("GET /status.json while a stream is open: %d", code)
	}
	// A connection of its own: at the cap, the server closes idle
	// keep-alive ones, and a POST is not retried on another.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Post(base+"/", "text/plain", strings.NewReader("x"))
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %v %+v", err, resp)
	} else {
		resp.Body.Close()
	}

	start := time.Now()
	p.stop(t)
	// A stream that held the server's shutdown would take its whole 5 s
	// bound (metrics.shutdownTimeout); the rest of a stop is well under.
	if took := time.Since(start); took > 4500*time.Millisecond {
		t.Errorf("pcheck took %s to stop with a stream open", took)
	}
	if _, err := io.ReadAll(stream.Body); err != nil {
		t.Errorf("the stream did not end cleanly when pcheck stopped: %v", err)
	}
}
