// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testport"
	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// ports are this package's loopback ports (the e2e tests have theirs above).
var ports = testport.NewSpan(16000, 21000)

// freeAddr is a loopback address nothing listens on now, and no client's
// connect will take before the test's server binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(ports.Free(t))
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHTTP polls url until it answers code.
func waitHTTP(t *testing.T, url string, code int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := get(t, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %q, want %d", url, got, body, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsAndHealthEndpoints(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	newFakeService(t, work, pfiles, "alpha", "")
	metricsAddr, healthAddr := freeAddr(t), freeAddr(t)
	p := startPcheck(t, pfiles, func(c *Config) { c.MetricsListen, c.HealthListen = metricsAddr, healthAddr })
	p.waitStatus(t, "alpha started", upWith("alpha", 0))

	health := "http://" + healthAddr + "/healthz"
	waitHTTP(t, health, 200)
	waitHTTP(t, health+"/alpha", 200)
	if code, _ := get(t, health+"/nosuch"); code != 404 {
		t.Errorf("health of an unknown service: %d, want 404", code)
	}
	body := waitHTTP(t, "http://"+metricsAddr+"/metrics", 200)
	for _, want := range []string{
		`pwatch_service_up{service="alpha"} 1`,
		`pwatch_service_state{service="alpha",state="Up"} 1`,
		`pwatch_restarts_total{reason="start",service="alpha"} 1`,
		`pwatch_watcher_info{backend="ebpf"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Stopped (maintenance): the node is out of the load balancer.
	if err := p.client.Stop(context.Background(), "alpha"); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, health, 503)
	waitHTTP(t, health+"/alpha", 503)
	if err := p.client.Start(context.Background(), "alpha"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, "alpha watched again", func(m map[string]control.ServiceStatus) bool { return m["alpha"].State == "Up" })
	waitHTTP(t, health, 200)
}

// buildDemoserver builds cmd/demoserver into dir.
func buildDemoserver(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "demoserver")
	out, err := exec.Command("go", "build", "-o", exe, "../../cmd/demoserver").CombinedOutput()
	if err != nil {
		t.Fatalf("build demoserver: %v\n%s", err, out)
	}
	return exe
}

// padmin status shows each block's last listen check: the accept queue
// of the service's listener and its backlog.
func TestStatusReportsAcceptQueue(t *testing.T) {
	testpriv.Root(t)
	work, pfiles := t.TempDir(), t.TempDir()
	exe := buildDemoserver(t, work)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	script := filepath.Join(work, "demo.restart")
	os.WriteFile(script, []byte("#!/bin/sh\nsetsid "+exe+" -listen "+addr+" -backlog 7 </dev/null >/dev/null 2>&1 &\n"), 0o755)
	t.Cleanup(func() { killAll(exe) })
	os.WriteFile(filepath.Join(pfiles, "demo.pfile"), []byte("process "+exe+"\nrestart_script "+script+"\n"+
		"_bi_socket{\n PS_EXEC DLL:/x/lib_bi_socket.so:DIRECT:-:10:0:2:600:"+port+"\n PS_ACTION DLL:/x/lib_bi_socket.so:DIRECT:-:--:1:0\n}\n"), 0o644)
	p := startPcheck(t, pfiles)
	st := p.waitStatus(t, "a listen check round", func(m map[string]control.ServiceStatus) bool {
		s := m["demo"]
		return s.State == "Up" && len(s.Checks) == 1 && s.Checks[0].Backlog >= 0
	})
	c := st["demo"].Checks[0]
	if c.Backlog != 7 || c.AcceptQueue != 0 || c.Kind != "tcp" || c.Port != atoi(t, port) {
		t.Fatalf("check status %+v: want tcp on %s, backlog 7, queue 0", c, port)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
