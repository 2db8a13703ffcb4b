// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

const samples = "../../pfile"

// padmin runs padmin with args and returns its output and exit status.
func padmin(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"padmin"}, args...), &out, &errb)
	status = exitStatus(err, &errb)
	return out.String(), errb.String(), status
}

func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckSamples(t *testing.T) {
	out, errOut, status := padmin(t, "check", samples)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(samples, "*.pfile"))
	var want strings.Builder
	for _, f := range files {
		want.WriteString("OK " + strings.TrimSuffix(filepath.Base(f), ".pfile") + "\n")
	}
	if out != want.String() || !strings.Contains(out, "OK sample1\nOK sample2\nOK sample3\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want.String())
	}
	wantErr := filepath.Join(samples, "sample3.pfile") + ":8: warning: taken as the rest of the comment on line 7 (it follows a comment ending with ':'); start it with # to make that explicit\n"
	if errOut != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}
}

func TestCheckErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.pfile", "process /usr/sbin/apache2\nuser root\nrestart_script /etc/pwatch/scripts/apache2.restart\n")
	bad := writeFile(t, dir, "bad.pfile", "process apache2\nrestart_script /r\nretry_over_action restart\nretry_cont 3\n}\n")
	out, errOut, status := padmin(t, "check", good, bad, filepath.Join(dir, "missing.pfile"))
	if status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	if out != "OK good\n" {
		t.Errorf("stdout %q", out)
	}
	wantErr := strings.Join([]string{
		filepath.Join(dir, "missing.pfile") + ": stat: no such file or directory",
		bad + `:1:9: process: "apache2" is not an absolute path`,
		bad + `:3:19: retry_over_action: "restart" is not one of continue, shutdown, exit, reboot`,
		bad + `:4:1: unknown key "retry_cont" (did you mean retry_count?)`,
		bad + `:5:1: unexpected }: no _bi_ block is open`,
	}, "\n") + "\n"
	if errOut != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}
}

func TestCheckDuplicateNames(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	src := "process /usr/sbin/nginx\nuser root\nrestart_script /r\n"
	writeFile(t, a, "web.pfile", src)
	writeFile(t, b, "web.pfile", src)
	out, errOut, status := padmin(t, "check", a, b)
	if status != 1 || out != "OK web\n" || !strings.Contains(errOut, `service name "web" is already used by `+filepath.Join(a, "web.pfile")) {
		t.Errorf("status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

func TestCheckJSON(t *testing.T) {
	out, _, status := padmin(t, "check", "--json", filepath.Join(samples, "sample1.pfile"), filepath.Join(samples, "sample2.pfile"))
	if status != 0 {
		t.Fatalf("status %d", status)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON object per line, got:\n%s", out)
	}
	var s1 struct {
		Name           string `json:"name"`
		Process        string `json:"process"`
		RestartTimeout int    `json:"restart_timeout"`
		Checks         []struct {
			Check       string  `json:"check"`
			Interval    int     `json:"interval"`
			Duration    int     `json:"duration"`
			Port        int     `json:"port"`
			Timeout     int     `json:"timeout"`
			Path        *string `json:"path"`
			ActionError int     `json:"action_error"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &s1); err != nil {
		t.Fatal(err)
	}
	c := s1.Checks[0]
	if s1.Name != "sample1" || s1.Process != "/usr/sbin/apache2" || s1.RestartTimeout != 60 ||
		c.Check != "http" || c.Interval != 60 || c.Duration != 600 || c.Port != 8080 || c.Timeout != 10 ||
		c.Path == nil || *c.Path != "/" || c.ActionError != 1 {
		t.Errorf("sample1: %s", lines[0])
	}
	if !strings.Contains(lines[1], `"name":"sample2"`) || !strings.Contains(lines[1], `"check":"tcp"`) || !strings.Contains(lines[1], `"path":null`) {
		t.Errorf("sample2: %s", lines[1])
	}
}

func TestCheckJSONWithErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.pfile", "process /usr/sbin/apache2\nrestart_script /r\n")
	writeFile(t, dir, "b.pfile", "process /usr/sbin/apache2\n")
	out, errOut, status := padmin(t, "check", "--json", dir)
	if status != 1 || !strings.HasPrefix(out, `{"name":"a",`) || strings.Count(out, "\n") != 1 ||
		!strings.Contains(errOut, "b.pfile:1: missing required key restart_script") {
		t.Errorf("status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

func TestCheckUsage(t *testing.T) {
	_, errOut, status := padmin(t, "check")
	if status != 2 || errOut != "padmin: check: expected at least one PFILE or DIR\n" {
		t.Errorf("status %d, stderr %q", status, errOut)
	}
	dir := t.TempDir()
	_, errOut, status = padmin(t, "check", dir)
	if status != 1 || errOut != dir+": no *.pfile files in this directory\n" {
		t.Errorf("empty dir: status %d, stderr %q", status, errOut)
	}
}

func TestExitStatus(t *testing.T) {
	var b bytes.Buffer
	if s := exitStatus(nil, &b); s != 0 || b.Len() != 0 {
		t.Errorf("nil: %d %q", s, b.String())
	}
	if s := exitStatus(cli.Exit("", 1), &b); s != 1 || b.Len() != 0 {
		t.Errorf("silent exit: %d %q", s, b.String())
	}
	if s := exitStatus(os.ErrNotExist, &b); s != 1 || b.String() != "padmin: file does not exist\n" {
		t.Errorf("plain error: %d %q", s, b.String())
	}
}

// A pfile whose script others could write fails the check, naming the
// script and why; the test-only flag turns that into a warning.
func TestCheckTrustRule(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "x.restart")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o775); err != nil {
		t.Fatal(err)
	}
	pf := writeFile(t, dir, "x.pfile", "process /usr/bin/sleep\nuser root\nrestart_script "+script+"\n")
	ok := writeFile(t, dir, "ok.pfile", "process /usr/bin/sleep\nuser root\nrestart_script /bin/true\n")
	runsAs := "root"
	if os.Geteuid() != 0 {
		runsAs = "uid " + strconv.Itoa(os.Geteuid())
	}
	want := script + ": writable by group (mode 0775); pcheck runs it as " + runsAs + "\n"

	out, errOut, status := padmin(t, "check", pf, ok)
	if status != 1 || out != "OK ok\n" || errOut != want {
		t.Errorf("check: status %d, stdout %q, stderr %q; want 1, %q, %q", status, out, errOut, "OK ok\n", want)
	}
	out, errOut, status = padmin(t, "check", "--unsafe-skip-trust-check", pf, ok)
	if status != 0 || out != "OK x\nOK ok\n" || !strings.Contains(errOut, "trust rule is off") || !strings.Contains(errOut, "accepted anyway: "+want) {
		t.Errorf("check --unsafe-skip-trust-check: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}
