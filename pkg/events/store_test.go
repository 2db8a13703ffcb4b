// SPDX-License-Identifier: Apache-2.0

package events

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/syncbuf"
	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/msg"
)

// openStore opens the store of dir, its warnings in the returned buffer.
func openStore(t *testing.T, dir string, keep int) (*Store, []Event, *syncbuf.Buffer) {
	t.Helper()
	var logs syncbuf.Buffer
	s, old, err := OpenStore(dir, keep, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, old, &logs
}

// record publishes n Down events through a hub that writes to s.
func record(h *Hub, n int) {
	for i := 0; i < n; i++ {
		h.Record(msg.Down("web", 1000+i))
	}
}

func TestStoreReadsBackAndContinuesTheNumbering(t *testing.T) {
	dir := t.TempDir()
	s, old, _ := openStore(t, dir, 10)
	if len(old) != 0 {
		t.Fatalf("a new store read back %+v", old)
	}
	h := NewHub(10, fixedStamp)
	h.OnPublish(s.Append)
	record(h, 3)
	s.Close() // a SIGKILL would leave the same lines: nothing is buffered in pcheck

	s2, old, logs := openStore(t, dir, 10)
	if len(old) != 3 || old[0].Seq != 1 || old[2].PID != 1002 || old[2].Text != msg.Down("web", 1002).Text {
		t.Fatalf("read back %+v", old)
	}
	h2 := NewHub(10, fixedStamp)
	h2.Restore(old)
	h2.OnPublish(s2.Append)
	if e := h2.Publish(Event{Event: "up"}); e.Seq != 4 {
		t.Fatalf("next seq %d, want 4", e.Seq)
	}
	if logs.String() != "" {
		t.Fatalf("warnings on a sound history: %s", logs.String())
	}
}

func TestStoreRotationKeepsTheLastKeep(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := openStore(t, dir, DefaultKeep)
	h := NewHub(DefaultKeep, fixedStamp)
	h.OnPublish(s.Append)
	record(h, 2*DefaultKeep+345)
	s.Close()
	for _, name := range []string{File, OldFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte{'\n'}); n > DefaultKeep {
			t.Fatalf("%s holds %d events, more than %d", name, n, DefaultKeep)
		}
	}
	_, old, _ := openStore(t, dir, DefaultKeep)
	if len(old) != DefaultKeep {
		t.Fatalf("read back %d events, want %d", len(old), DefaultKeep)
	}
	if first, last := old[0].Seq, old[len(old)-1].Seq; first != DefaultKeep+346 || last != 2*DefaultKeep+345 {
		t.Fatalf("read back seq %d..%d, want the last %d", first, last, DefaultKeep)
	}
}

func TestStoreDropsATornLastLine(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := openStore(t, dir, 10)
	h := NewHub(10, fixedStamp)
	h.OnPublish(s.Append)
	record(h, 2)
	s.Close()
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":3,"time":"2026-12-06T22:00:00Z","event":"do`) // a crash mid-write
	f.Close()

	s2, old, logs := openStore(t, dir, 10)
	if len(old) != 2 || !strings.Contains(logs.String(), "torn last line") || !strings.Contains(logs.String(), "line=3") {
		t.Fatalf("read back %+v; log %s", old, logs.String())
	}
	h2 := NewHub(10, fixedStamp)
	h2.Restore(old)
	h2.OnPublish(s2.Append)
	h2.Record(msg.Up("web", 7))
	s2.Close()
	_, again, logs := openStore(t, dir, 10) // the torn part was cut off: the new line stands alone
	if len(again) != 3 || again[2].Event != "up" || again[2].Seq != 3 || logs.String() != "" {
		t.Fatalf("after the repair %+v; log %s", again, logs.String())
	}
}

func TestStoreSetsACorruptFileAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	good := `{"seq":1,"time":"2026-12-06T22:00:00Z","event":"up","text":"x"}` + "\n"
	for name, content := range map[string]string{
		"garbage":      good + "not json\n" + good,
		"out of order": good + good,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s, old, logs := openStore(t, dir, 10)
		if len(old) != 0 || !strings.Contains(logs.String(), "is corrupt") || !strings.Contains(logs.String(), "line=2") {
			t.Fatalf("%s: read back %+v; log %s", name, old, logs.String())
		}
		matches, _ := filepath.Glob(path + ".corrupt-*")
		if len(matches) != 1 {
			t.Fatalf("%s: set aside as %v", name, matches)
		}
		os.Remove(matches[0])
		s.Append(Event{Seq: 1, Event: "up"}) // and a new history starts
		s.Close()
		if data, _ := os.ReadFile(path); !bytes.HasPrefix(data, []byte(`{"seq":1,`)) || bytes.Count(data, []byte{'\n'}) != 1 {
			t.Fatalf("%s: new history %q", name, data)
		}
	}
}

// A history file a non-root user could have written is not believed.
func TestStoreDoesNotBelieveAnotherUsersFile(t *testing.T) {
	testpriv.Root(t)
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	forged := `{"seq":1,"time":"2026-12-06T22:00:00Z","event":"up","service":"web","text":"forged"}` + "\n"
	if err := os.WriteFile(path, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, old, logs := openStore(t, dir, 10)
	if len(old) != 0 || !strings.Contains(logs.String(), "cannot be believed") {
		t.Fatalf("read back %+v; log %s", old, logs.String())
	}
	if matches, _ := filepath.Glob(path + ".corrupt-*"); len(matches) != 1 {
		t.Fatalf("set aside as %v", matches)
	}
}
