// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwatch/pwatch/internal/testpriv"
	"github.com/pwatch/pwatch/pkg/argrule"
)

const fixtureBoot = 1700000000 // btime of testdata/table.json

// render shows matches as "100[101 102] 110[]" for comparison.
func render(ms []Match) string {
	var parts []string
	for _, m := range ms {
		var d []string
		for _, p := range m.Descendants {
			d = append(d, fmt.Sprint(p.ID.PID))
		}
		parts = append(parts, fmt.Sprintf("%d[%s]", m.ID.PID, strings.Join(d, " ")))
	}
	return strings.Join(parts, " ")
}

func writeScript(t *testing.T, dir, firstLine string) string {
	t.Helper()
	path := filepath.Join(dir, "svc.py")
	if err := os.WriteFile(path, []byte(firstLine+"\nprint('hi')\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePIDFile writes content to a pidfile last modified at boot+after.
func writePIDFile(t *testing.T, content string, after time.Duration) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "svc.pid")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(fixtureBoot, 0).Add(after)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return path
}

func intp(i int) *int { return &i }

func chmod(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScanFixture(t *testing.T) {
	script := writeScript(t, t.TempDir(), "#!/usr/bin/env python3")
	root := buildFixture(t, map[string]string{"SCRIPT": script})
	table, err := NewTable(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	const (
		apache = "/usr/sbin/apache2"
		java   = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
	)
	tests := []struct {
		name string
		m    Matcher
		want string
	}{
		{"exe: masters with workers and their CGI child; zombie and vanished pid left out",
			Matcher{Exe: apache}, "100[101 102 103] 110[]"},
		{"args picks one instance; its matching workers stay below it",
			Matcher{Exe: apache, Args: argrule.MustCompile(`^-k start$`)}, "100[101 102 103]"},
		{"args tells java programs apart",
			Matcher{Exe: java, Args: argrule.MustCompile(`catalina\.startup\.Bootstrap`), UID: intp(997)}, "200[]"},
		{"without a user, only root's processes are the service's: other users' running the exe are not",
			Matcher{Exe: java}, ""},
		{"args is unanchored over argv[1:]",
			Matcher{Exe: "/usr/bin/python3.11", Args: argrule.MustCompile(`other\.py`)}, "401[]"},
		{"args never sees argv[0]",
			Matcher{Exe: java, Args: argrule.MustCompile(`bin/java`)}, ""},
		{"real user",
			Matcher{Exe: java, UID: intp(1000)}, "201[]"},
		{"any exe, one user: workers whose parent is another user's are top-level",
			Matcher{UID: intp(33)}, "101[103] 102[] 301[]"},
		{"a replaced binary (deleted) still matches",
			Matcher{Exe: "/usr/sbin/nginx"}, "300[301]"},
		{"script run by its interpreter, with or without options; not an editor of it",
			Matcher{Exe: script}, "400[] 403[]"},
		{"nothing runs it",
			Matcher{Exe: "/usr/sbin/sshd"}, ""},
		{"pidfile written after its process started",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "100\n", 10*time.Second)}, "100[101 102 103]"},
		{"pidfile naming an unrelated process",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "500\n", time.Hour)}, ""},
		{"pidfile dated before its process started, as after a forward clock step",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "100\n", time.Second)}, "100[101 102 103]"},
		{"pidfile dated in the future (the clock stepped back since)",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "100\n", 1000*time.Hour)}, "100[101 102 103]"},
		{"stale pidfile whose pid a newer process of the same exe took after the file was seen",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "110\n", 10*time.Second)}, ""},
		{"pidfile naming a zombie",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "120\n", time.Hour*1000)}, ""},
		{"pidfile holding no pid",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "apache\n", time.Hour)}, ""},
		{"pidfile naming another user's process of the exe, the entry naming no user",
			Matcher{Exe: java, PIDFile: writePIDFile(t, "200\n", time.Hour)}, ""},
		{"pidfile naming the process of the entry's user",
			Matcher{Exe: java, UID: intp(997), PIDFile: writePIDFile(t, "200\n", time.Hour)}, "200[]"},
		{"pidfile naming an older root process that is not the service",
			Matcher{Exe: apache, PIDFile: writePIDFile(t, "1\n", time.Hour)}, ""},
		{"pidfile others can write is not believed",
			Matcher{Exe: apache, PIDFile: chmod(t, writePIDFile(t, "100\n", 10*time.Second), 0o666)}, ""},
		{"pidfile its group can write is not believed",
			Matcher{Exe: apache, PIDFile: chmod(t, writePIDFile(t, "100\n", 10*time.Second), 0o664)}, ""},
		{"pidfile missing",
			Matcher{Exe: apache, PIDFile: filepath.Join(t.TempDir(), "none.pid")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := table.Scan(tc.m)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if r := render(got); r != tc.want {
				t.Errorf("Scan = %q, want %q", r, tc.want)
			}
		})
	}
}

// A pidfile keeps the moment it was first seen until it is written again:
// its pid taken over later by a newer process is stale however the clock
// moves; a new writing of the file is a new sighting.
func TestPIDFileSightingLastsUntilTheFileChanges(t *testing.T) {
	root := buildFixture(t, nil)
	table, err := NewTable(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := Matcher{Exe: "/usr/sbin/apache2", PIDFile: writePIDFile(t, "110\n", time.Hour)}
	scan := func() string {
		t.Helper()
		got, err := table.Scan(m)
		if err != nil {
			t.Fatal(err)
		}
		return render(got)
	}
	if got := scan(); got != "" {
		t.Fatalf("a pidfile seen before its pid's process started matched %q", got)
	}
	// Later: 110 has started since (uptime 2000 s), the file is the same.
	if err := os.WriteFile(filepath.Join(root, "uptime"), []byte("2000.00 4000.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := scan(); got != "" {
		t.Fatalf("the unchanged stale pidfile matched %q", got)
	}
	// Written again (110 wrote it): seen now, after 110 started.
	if err := os.Remove(m.PIDFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.PIDFile, []byte("110\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := scan(); got != "110[]" {
		t.Fatalf("the rewritten pidfile matched %q, want 110[]", got)
	}
}

func TestScanReportsIdentityAndArgv(t *testing.T) {
	table, err := NewTable(buildFixture(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := table.Scan(Matcher{Exe: "/usr/sbin/apache2", Args: argrule.MustCompile(`^-k`)})
	if err != nil || len(got) != 1 {
		t.Fatalf("Scan = %v, %v; want one match", got, err)
	}
	m := got[0]
	if m.ID != (ID{PID: 100, StartTime: 500}) || m.PPID != 1 || m.State != 'S' || m.Comm != "apache2" {
		t.Errorf("match = %+v", m.Process)
	}
	if want := "/usr/sbin/apache2 -k start"; strings.Join(m.Argv, " ") != want {
		t.Errorf("argv = %q, want %q", m.Argv, want)
	}
	cgi := m.Descendants[2]
	if cgi.ID != (ID{PID: 103, StartTime: 900}) || cgi.PPID != 101 || strings.Join(cgi.Argv, " ") != "/usr/bin/perl /usr/lib/cgi-bin/report.pl" {
		t.Errorf("CGI descendant = %+v", cgi)
	}
	wantIDs := []ID{{100, 500}, {101, 510}, {102, 511}, {103, 900}}
	if fmt.Sprint(m.IDs()) != fmt.Sprint(wantIDs) {
		t.Errorf("IDs = %v, want %v", m.IDs(), wantIDs)
	}
}

func TestScanFailsWithoutProc(t *testing.T) {
	root := t.TempDir()
	table, err := NewTable(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Scan(Matcher{Exe: "/bin/true"}); err == nil {
		t.Error("Scan of a missing proc mount succeeded")
	}
}

func TestIdentityFixture(t *testing.T) {
	root := buildFixture(t, nil)
	table, err := NewTable(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, state, err := table.Identity(120)
	if err != nil || id != (ID{120, 120000}) || state != 'Z' || !state.Dead() {
		t.Errorf("Identity(120) = %v %v %v, want a zombie 120@120000", id, state, err)
	}
	for _, pid := range []int{104, 999} {
		if _, _, err := table.Identity(pid); !errors.Is(err, ErrGone) {
			t.Errorf("Identity(%d) error = %v, want ErrGone", pid, err)
		}
	}
	if id, _, err := Identify(root, 100); err != nil || id != (ID{100, 500}) {
		t.Errorf("Identify(100) = %v, %v", id, err)
	}

	alive := []struct {
		id   ID
		want bool
	}{
		{ID{100, 500}, true},
		{ID{100, 501}, false}, // the pid now holds another process
		{ID{120, 120000}, false},
		{ID{104, 905}, false},
	}
	for _, a := range alive {
		if got, err := table.Alive(a.id); err != nil || got != a.want {
			t.Errorf("Alive(%v) = %v, %v; want %v", a.id, got, err, a.want)
		}
	}
}

func TestDescendantsFixture(t *testing.T) {
	table, err := NewTable(buildFixture(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := table.Descendants(ID{100, 500})
	if err != nil {
		t.Fatal(err)
	}
	if r := render([]Match{{Process: Process{ID: ID{PID: 100}}, Descendants: ds}}); r != "100[101 102 103]" {
		t.Errorf("Descendants(100) = %s", r)
	}
	// Kernel threads are not part of any tree.
	ds, err = table.Descendants(ID{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID.PID == 2 || d.ID.PID == 9 {
			t.Errorf("kernel thread %d listed as a descendant of init", d.ID.PID)
		}
	}
	if _, err := table.Descendants(ID{100, 1}); !errors.Is(err, ErrGone) {
		t.Errorf("Descendants of a reused pid: error = %v, want ErrGone", err)
	}
}

func TestReadShebang(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		line string
		want *script
	}{
		{"#!/nonexistent/python3 -u", &script{interpPath: "/nonexistent/python3", interpExe: "/nonexistent/python3", name: "python3"}},
		{"#! /nonexistent/perl", &script{interpPath: "/nonexistent/perl", interpExe: "/nonexistent/perl", name: "perl"}},
		{"#!/usr/bin/env python3", &script{name: "python3"}},
		{"#!/usr/bin/env -S LANG=C node --harmony", &script{name: "node"}},
		{"#!/usr/bin/env", nil},
		{"#!", nil},
		{"\x7fELF", nil},
	}
	for _, tc := range tests {
		got := readShebang(writeScript(t, dir, tc.line))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("readShebang(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
	if got := readShebang(filepath.Join(dir, "missing")); got != nil {
		t.Errorf("readShebang(missing) = %+v", got)
	}
}

func TestRunsScript(t *testing.T) {
	const path = "/srv/app/svc.py"
	c := &matcher{Matcher: Matcher{Exe: path}, script: &script{interpExe: "/usr/bin/python3.11", name: "python3"}}
	tests := []struct {
		exe  string
		argv []string
		want bool
	}{
		{"/usr/bin/python3.11", []string{"/usr/bin/python3", path}, true},
		{"/usr/bin/python3.11", []string{"python3", "-u", "-O", path, "-v"}, true},
		{"/usr/bin/python3.11", []string{"python3", "--", path}, true},
		{"/usr/bin/python3.11", []string{path, "--port", "1"}, true}, // exec -a
		{"/usr/bin/python3.11 (deleted)", []string{"python3", path}, true},
		{"/usr/bin/python3.11", []string{"python3", "other.py", path}, false},
		{"/usr/bin/python3.11", []string{"python3", "--"}, false},
		{"/usr/bin/vim.basic", []string{"vim", path}, false},
		{"/usr/bin/vim.basic", []string{path}, false},
		{"/usr/bin/python3.11", nil, false},
	}
	for _, tc := range tests {
		if got := c.runsScript(tc.exe, tc.argv); got != tc.want {
			t.Errorf("runsScript(%q, %q) = %v, want %v", tc.exe, tc.argv, got, tc.want)
		}
	}
}

// A pidfile that a user other than root and the entry's could have written
// is not believed (issue 21): uid 65534 must not name the pid pcheck takes
// for a root service.
func TestPIDFileOfAnotherOwnerIsRefused(t *testing.T) {
	testpriv.Root(t)
	table, err := NewTable(buildFixture(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	path := writePIDFile(t, "100\n", 10*time.Second)
	scan := func(m Matcher) string {
		t.Helper()
		got, err := table.Scan(m)
		if err != nil {
			t.Fatal(err)
		}
		return render(got)
	}
	apache := Matcher{Exe: "/usr/sbin/apache2", PIDFile: path}
	if got := scan(apache); got != "100[101 102 103]" {
		t.Fatalf("root's pidfile: Scan = %q, want the master", got)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if got := scan(apache); got != "" {
		t.Errorf("a pidfile owned by uid 65534 named %q for a root service", got)
	}
}

// A pidfile or an executable that is a FIFO (the service's user can make
// one in a directory of theirs) is refused by what it is, never opened for
// reading: that open would block the scan, and every look at the service,
// forever.
func TestScanNeverOpensAFIFO(t *testing.T) {
	table, err := NewTable(buildFixture(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Unblocks an open that did block (the old code): O_RDWR never waits.
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	for _, c := range []struct {
		name string
		m    Matcher
	}{
		{"pidfile", Matcher{Exe: "/usr/sbin/apache2", PIDFile: fifo}},
		{"executable", Matcher{Exe: fifo}},
	} {
		done := make(chan string, 1)
		go func() {
			got, err := table.Scan(c.m)
			done <- fmt.Sprintf("%q, %v", render(got), err)
		}()
		select {
		case got := <-done:
			if got != `"", <nil>` {
				t.Errorf("%s: Scan = %s, want no match and no error", c.name, got)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s: Scan of a FIFO %s blocked for 20s: it was opened for reading", c.name, fifo)
		}
	}
}

// The service's user may own the pidfile's directory, so the pidfile may
// be their symlink to any file of root's (which passes the owner check):
// what a file that holds no pid says is never logged.
func TestPIDFileTextIsNotLogged(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	table, err := NewTable(buildFixture(t, nil), log)
	if err != nil {
		t.Fatal(err)
	}
	secret := writePIDFile(t, "root:$6$secrethash:20000:0:99999:7:::\n", time.Hour)
	link := filepath.Join(t.TempDir(), "svc.pid")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	got, err := table.Scan(Matcher{Exe: "/usr/sbin/apache2", PIDFile: link})
	if err != nil || len(got) != 0 {
		t.Fatalf("Scan = %s, %v; want no match", render(got), err)
	}
	if !strings.Contains(logged.String(), "pidfile holds no pid") {
		t.Fatalf("no warning of the pidfile without a pid in %q", logged.String())
	}
	if strings.Contains(logged.String(), "secrethash") {
		t.Errorf("the text of the file the pidfile names was logged: %q", logged.String())
	}
}

// Below lists a snapshot's processes under one, parents first, by
// identity only; an identity the snapshot does not hold (its pid now
// another process's) lists nothing.
func TestSnapshotBelow(t *testing.T) {
	root := buildFixture(t, map[string]string{"SCRIPT": writeScript(t, t.TempDir(), "#!/bin/sh")})
	table, err := NewTable(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := table.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	master := s.nodes[100].ID
	ids, ok := s.Below(master)
	if !ok || len(ids) == 0 || ids[0].PID != 101 && ids[0].PID != 102 {
		t.Fatalf("below 100: %v %v, want its workers first", ids, ok)
	}
	for _, id := range ids {
		if id.PID == 100 || s.nodes[id.PID] == nil {
			t.Errorf("below 100 lists %v", id)
		}
	}
	if _, ok := s.Below(ID{PID: 100, StartTime: master.StartTime + 1}); ok {
		t.Error("an identity the snapshot does not hold was found")
	}
}
