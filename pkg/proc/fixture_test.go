// SPDX-License-Identifier: Apache-2.0

package proc

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fixture is testdata/table.json: a process table to lay out as a fake
// /proc (symbolic links are made at test time, not committed).
type fixture struct {
	BootTime int64         `json:"btime"`
	Procs    []fixtureProc `json:"procs"`
}

type fixtureProc struct {
	PID      int      `json:"pid"`
	PPID     int      `json:"ppid"`
	Start    uint64   `json:"start"`
	UID      int      `json:"uid"`
	State    string   `json:"state"`
	Comm     string   `json:"comm"`
	Exe      string   `json:"exe"`
	Argv     []string `json:"argv"`
	Kthread  bool     `json:"kthread"`
	Vanished bool     `json:"vanished"` // its directory without files: gone mid-scan
}

// buildFixture writes testdata/table.json as a proc tree under a temporary
// directory, replacing each $NAME in exe and argv by vars[NAME].
// fixtureUptime is the fixture's /proc/uptime.
const fixtureUptime = "600.00 1100.00\n"

func buildFixture(t *testing.T, vars map[string]string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/table.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", fmt.Sprintf("cpu  1 2 3 4 5 6 7 8 9 10\nbtime %d\nprocesses 600\n", f.BootTime))
	// Up 600 s: after apache 100 started (5 s), before apache 110 (1000 s).
	write("uptime", fixtureUptime)
	expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
	for _, p := range f.Procs {
		dir := strconv.Itoa(p.PID)
		if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if p.Vanished {
			continue
		}
		state := p.State
		if state == "" {
			state = "S"
		}
		comm := p.Comm
		if comm == "" && len(p.Argv) > 0 {
			comm = filepath.Base(strings.Fields(p.Argv[0])[0])
		}
		flags := 0x400000
		if p.Kthread {
			flags |= pfKthread
		}
		write(dir+"/stat", statLine(p.PID, comm, state, p.PPID, flags, p.Start))
		write(dir+"/status", fmt.Sprintf("Name:\t%s\nState:\t%s\nTgid:\t%d\nPid:\t%d\nPPid:\t%d\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n",
			comm, state, p.PID, p.PID, p.PPID, p.UID, p.UID, p.UID, p.UID))
		var cmdline strings.Builder
		for _, a := range p.Argv {
			cmdline.WriteString(expand(a))
			cmdline.WriteByte(0)
		}
		write(dir+"/cmdline", cmdline.String())
		if p.Exe != "" {
			if err := os.Symlink(expand(p.Exe), filepath.Join(root, dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// statLine is a /proc/PID/stat line with its 52 fields.
func statLine(pid int, comm, state string, ppid, flags int, start uint64) string {
	fields := make([]string, 52)
	for i := range fields {
		fields[i] = "0"
	}
	set := func(n int, v any) { fields[n-1] = fmt.Sprint(v) } // n counts from 1 as in proc(5)
	set(1, pid)
	set(2, "("+comm+")")
	set(3, state)
	set(4, ppid)
	set(5, pid)
	set(6, pid)
	set(8, -1)
	set(9, flags)
	set(18, 20)
	set(20, 1)
	set(22, start)
	set(25, uint64(18446744073709551615))
	set(38, 17)
	return strings.Join(fields, " ") + "\n"
}
