// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks what must hold for any input: Parse does not panic,
// returns a service or an error but never both, and every error and
// warning has a line.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.pfile"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no samples in %s: %v", samplesDir, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add([]byte(strings.ReplaceAll(string(b), "\n", "\r\n")))
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.src))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		svc, warns, err := Parse("f.pfile", src)
		if (svc == nil) == (err == nil) {
			t.Fatalf("service %v together with error %v", svc, err)
		}
		for _, w := range warns {
			if w.Line < 1 || w.Col < 0 || w.File != "f.pfile" {
				t.Errorf("warning without a line: %+v", w)
			}
		}
		if err != nil {
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.Line < 1 || e.Col < 0 || e.File != "f.pfile" || e.Msg == "" {
					t.Errorf("error without a line: %+v", e)
				}
				if strings.Contains(e.Msg, "internal parser error") {
					t.Fatalf("parser panicked: %s", e.Msg)
				}
			}
			return
		}
		if svc.Process == "" || len(svc.RestartScript) == 0 {
			t.Errorf("service without its required keys: %+v", svc)
		}
		for _, c := range svc.Checks {
			if c.Kind == 0 || c.Port < 1 || c.Port > 65535 || c.Interval < MinInterval || c.Duration < c.Interval ||
				c.Timeout <= 0 || c.Timeout > c.Interval || c.Host == "" {
				t.Errorf("invalid check accepted: %+v", c)
			}
		}
		if _, err := json.Marshal(svc); err != nil {
			t.Errorf("marshal: %v", err)
		}
	})
}
