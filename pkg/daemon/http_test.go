package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/control"
)

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
