// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeSource is a Source the tests change between scrapes.
type fakeSource struct {
	mu       sync.Mutex
	services []ServiceState
	backend  string
	bpf      *BPFStats
	reboots  *int
}

func (f *fakeSource) Services() []ServiceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.services)
}

func (f *fakeSource) Backend() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backend
}

func (f *fakeSource) BPFStats() (BPFStats, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bpf == nil {
		return BPFStats{}, false
	}
	return *f.bpf, true
}

func (f *fakeSource) RebootCount() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reboots == nil {
		return 0, false
	}
	return *f.reboots, true
}

// set replaces service name's state (adding it when new).
func (f *fakeSource) set(s ServiceState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.services {
		if f.services[i].Name == s.Name {
			f.services[i] = s
			return
		}
	}
	f.services = append(f.services, s)
}

func (f *fakeSource) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services = slices.DeleteFunc(f.services, func(s ServiceState) bool { return s.Name == name })
}

// state is a service in state st, with one process while Up.
func state(name, st string) ServiceState {
	s := ServiceState{Name: name, State: st, Up: st == "Up"}
	if s.Up {
		s.Processes = 1
	}
	return s
}

// serve listens on a loopback port with h and closes it at the test's end.
func serve(t *testing.T, h http.Handler, log *slog.Logger) string {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := Listen("127.0.0.1:0", h, log, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return "http://" + srv.Addr().String()
}

var client = &http.Client{Timeout: 30 * time.Second}

// get fetches url with method and returns the status and body.
func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}
