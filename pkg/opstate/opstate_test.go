// SPDX-License-Identifier: Apache-2.0

package opstate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeepDropSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 5, 24, 9, 35, 26, 0, time.UTC)
	if err := s.Keep("web", Entry{State: Paused, Since: since}); err != nil {
		t.Fatal(err)
	}
	if err := s.Keep("db", Entry{State: RetryOver, Since: since}); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop("db"); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := again.Get("web"); !ok || e.State != Paused || !e.Since.Equal(since) {
		t.Fatalf("web after reopen: %+v %v", e, ok)
	}
	if _, ok := again.Get("db"); ok {
		t.Fatal("a dropped service came back")
	}
	if got := again.Names(); len(got) != 1 || got[0] != "web" {
		t.Fatalf("names %v", got)
	}
}

// A file that cannot be understood is an error naming it, never a panic
// nor an empty store.
func TestCorruptFileIsAnErrorNamingIt(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      "{\"version\":1,\"services\":{\"web\":",
		"wrong version": `{"version":7,"services":{}}`,
		"bad state":     `{"version":1,"services":{"web":{"state":"sleeping","since":"2026-05-24T09:35:26Z"}}}`,
		"no since":      `{"version":1,"services":{"web":{"state":"paused"}}}`,
		"a list":        `[1,2,3]`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, File)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open of a %s file: %v, want an error naming %s", name, err, path)
			}
		})
	}
}

func TestMissingFileIsEmpty(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "not-yet"))
	if err != nil || len(s.Names()) != 0 {
		t.Fatalf("Open of a missing dir: %v %v", s, err)
	}
}
