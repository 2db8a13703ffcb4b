// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// TestMetricsPassPromtool scrapes a real pcheck watching a demo server,
// after a death and a restart (so the counters and the probe histogram
// have series), and has promtool check the exposition: names, help, types
// and units follow Prometheus's conventions.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testpriv.Unavailable(t, "promtool is not installed (scripts/install-deps.sh installs the prometheus package)")
	}
	sc := newScene(t)
	d := newDemo(t, false)
	pf := d.writePfile(t, sc.dir, "demo", stallCheck{lib: "webserv", interval: 10, duration: 30, timeout: 2, port: d.port})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startPcheckFlags(t, sc, []string{"--metrics-listen", addr}, pf)
	pid := d.run(t)
	p.waitState(t, "demo", "Up")
	kill9(t, pid)
	d.waitPID(t, pid)
	p.waitState(t, "demo", "Up")

	var scrape []byte
	pollUntil(t, "a scrape with a restart and a probe in it", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		scrape, err = io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK &&
			bytes.Contains(scrape, []byte(`pwatch_restarts_total{reason="down",service="demo"} 1`)) &&
			bytes.Contains(scrape, []byte(`pwatch_probe_duration_seconds_count{check="_bi_webserv",result="ok",service="demo"}`))
	})
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out, scrape)
	}
}
