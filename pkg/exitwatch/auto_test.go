// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/internal/testpriv"
)

// logRecorder keeps slog's JSON output for assertions.
type logRecorder struct{ syncbuf.Buffer }

func (r *logRecorder) records(t *testing.T) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range bytes.Lines([]byte(r.String())) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// find returns the first record with msg whose attribute key is value.
func find(recs []map[string]any, msg, key, value string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg && r[key] == value {
			return r
		}
	}
	return nil
}

// TestAutoPicksEBPF: on a privileged host with BTF, auto takes ebpf, the
// best backend, and says so in the log.
func TestAutoPicksEBPF(t *testing.T) {
	testpriv.Root(t)
	if !slices.Contains(Backends(), "ebpf") {
		testpriv.Unavailable(t, "the ebpf backend is not registered in this build")
	}
	var rec logRecorder
	w, err := Open("auto", Options{Logger: slog.New(slog.NewJSONHandler(&rec, nil)), PollInterval: testPollInterval}, newSinkLog())
	if err != nil {
		t.Fatalf("Open(auto): %v", err)
	}
	defer w.Close()
	if w.Name() != "ebpf" {
		t.Errorf("auto chose %q, want ebpf; log:\n%s", w.Name(), rec.String())
	}
	if find(rec.records(t), "death-detection backend chosen", "watcher", w.Name()) == nil {
		t.Errorf("auto did not log its choice; log:\n%s", rec.String())
	}
}

// TestAutoFallsBackAndLogsWhy uses stand-in backends: one the kernel lacks
// (ErrNotSupported: "no", logged at info), one whose probe fails otherwise
// (logged as a warning with the error, not swallowed), and one that works.
func TestAutoFallsBackAndLogsWhy(t *testing.T) {
	saved := maps.Clone(registry)
	t.Cleanup(func() { registry = saved })
	registry = map[string]backend{}
	fake := &fakeWatcher{name: "works"}
	register(backend{name: "lacking", rank: 0,
		probe: func(Options) error { return fmt.Errorf("no such thing: %w", ErrNotSupported) },
		open:  func(Options, Sink) (Watcher, error) { t.Error("opened a backend whose probe said no"); return nil, nil }})
	register(backend{name: "denied", rank: 1,
		probe: func(Options) error { return errors.New("operation not permitted") },
		open:  func(Options, Sink) (Watcher, error) { t.Error("opened a backend whose probe failed"); return nil, nil }})
	register(backend{name: "works", rank: 2,
		probe: func(Options) error { return nil },
		open:  func(Options, Sink) (Watcher, error) { return fake, nil }})

	var rec logRecorder
	w, err := Open("auto", Options{Logger: slog.New(slog.NewJSONHandler(&rec, nil))}, newSinkLog())
	if err != nil {
		t.Fatalf("Open(auto): %v", err)
	}
	if w != fake {
		t.Fatalf("auto chose %v, want the working backend", w.Name())
	}
	recs := rec.records(t)
	if r := find(recs, "backend not supported here", "watcher", "lacking"); r == nil || r["level"] != "INFO" {
		t.Errorf("the lacking backend was not logged as unsupported at info: %v", recs)
	}
	if r := find(recs, "backend failed its probe", "watcher", "denied"); r == nil || r["level"] != "WARN" || r["err"] != "operation not permitted" {
		t.Errorf("the denied backend's error was not logged as a warning: %v", recs)
	}
	chosen := find(recs, "death-detection backend chosen", "watcher", "works")
	if chosen == nil {
		t.Fatalf("the choice was not logged: %v", recs)
	}
	want := fmt.Sprintf("lacking: no such thing: %v; denied: operation not permitted", ErrNotSupported)
	if chosen["passed_over"] != want {
		t.Errorf("passed_over = %q, want %q", chosen["passed_over"], want)
	}
}

// TestAutoBestWorksPassesNoneOver: when the best backend works, the choice
// is logged without a passed_over (not as "<nil>").
func TestAutoBestWorksPassesNoneOver(t *testing.T) {
	saved := maps.Clone(registry)
	t.Cleanup(func() { registry = saved })
	registry = map[string]backend{}
	fake := &fakeWatcher{name: "works"}
	register(backend{name: "works", rank: 0,
		probe: func(Options) error { return nil },
		open:  func(Options, Sink) (Watcher, error) { return fake, nil }})
	var rec logRecorder
	if _, err := Open("auto", Options{Logger: slog.New(slog.NewJSONHandler(&rec, nil))}, newSinkLog()); err != nil {
		t.Fatalf("Open(auto): %v", err)
	}
	chosen := find(rec.records(t), "death-detection backend chosen", "watcher", "works")
	if chosen == nil {
		t.Fatalf("the choice was not logged: %s", rec.String())
	}
	if v, ok := chosen["passed_over"]; ok {
		t.Errorf("passed_over = %v with nothing passed over", v)
	}
}

// TestProbesPass: as root on this project's hosts every one of our
// backends' probes says yes; a probe error is never hidden.
func TestProbesPass(t *testing.T) {
	testpriv.Root(t)
	opt := Options{}.withDefaults()
	for name, probe := range map[string]func(Options) error{"netlink": probeNetlink, "pidfd": probePidfd, "proc": probeProc} {
		if err := probe(opt); errors.Is(err, ErrNotSupported) {
			testpriv.Unavailable(t, name+": "+err.Error())
		} else if err != nil {
			t.Errorf("%s probe: %v", name, err)
		}
	}
}

func TestProcProbeWithoutProcfs(t *testing.T) {
	err := probeProc(Options{ProcRoot: t.TempDir()})
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("probe of a directory that is not procfs = %v, want ErrNotSupported", err)
	}
}

type fakeWatcher struct {
	Watcher
	name string
}

func (f *fakeWatcher) Name() string { return f.name }
