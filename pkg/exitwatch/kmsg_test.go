// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/pkg/proc"
)

// Records as Linux 6.18 wrote them to /dev/kmsg here (an OOM kill in a
// memory cgroup, and the x86 segfault line).
const (
	kmsgSummary  = "6,579,1343444623,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/pwatch-oom-5c90548b,task_memcg=/pwatch-oom-5c90548b,task=helper-bad8d790,pid=26590,uid=0\n"
	kmsgKilled   = "3,580,1343444643,-;Memory cgroup out of memory: Killed process 26590 (helper-bad8d790) total-vm:35372kB, anon-rss:32640kB, file-rss:968kB, shmem-rss:0kB, UID:0 pgtables:112kB oom_score_adj:0\n"
	kmsgSegfault = "6,664,1348984622,-;helper-bad8d790[27689]: segfault at 0 ip 00005612bd038462 sp 00007ffcb0c204f0 error 6 in helper-bad8d7908c01be83[1462,5612bd038000+1000] likely on CPU 1 (core 1, socket 0)\n"
)

func TestParseOOMRecord(t *testing.T) {
	r, ok := parseOOMRecord(kmsgSummary)
	if !ok || r.killed || r.pid != 26590 || r.memcg != "/pwatch-oom-5c90548b" || r.atNs != 1343444623000 {
		t.Errorf("summary: %+v, %v", r, ok)
	}
	r, ok = parseOOMRecord(kmsgKilled)
	if !ok || !r.killed || r.pid != 26590 || r.rssKiB != 32640+968 {
		t.Errorf("killed: %+v, %v", r, ok)
	}
	for name, rec := range map[string]string{
		"global OOM":               "3,9,5,-;Out of memory: Killed process 77 (java) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:1000 pgtables:8kB oom_score_adj:-100\n",
		"allocating task":          "3,9,5,-;Out of memory (oom_kill_allocating_task): Killed process 77 (a) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:0 pgtables:8kB oom_score_adj:0\n",
		"a comm with ) and digits": "3,9,5,-;Out of memory: Killed process 77 (x) total-vm:9kB) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:0 pgtables:8kB oom_score_adj:0\n",
		"no cpusets, no memcg":     "6,9,5,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=0-1,4,task=a,pid=77,uid=0\n",
		"with a dictionary":        "3,9,5,c,extra;Out of memory: Killed process 77 (a) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB\n SUBSYSTEM=mem\n",
	} {
		if r, ok := parseOOMRecord(rec); !ok || r.pid != 77 {
			t.Errorf("%s: %+v, %v; want pid 77", name, r, ok)
		}
	}
}

// A comm or a cgroup name holds what its owner chose: the pid is the
// summary's last but one field, whatever the comm says, and a memcg the
// kernel escaped is read back raw.
func TestParseOOMSummaryHostileNames(t *testing.T) {
	r, ok := parseOOMRecord("6,9,5,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a\\x0ab,task_memcg=/a\\x0ab\\x5c,task=x,pid=1,uid=0,pid=77,uid=0\n")
	if !ok || r.pid != 77 || r.memcg != "/a\nb\\" {
		t.Errorf("%+v, %v; want pid 77, memcg %q", r, ok, "/a\nb\\")
	}
}

// What is not the OOM killer's own record is not read as one: the segfault
// line of a file named like the report (the kernel prints its basename), a
// record from userspace (facility user), the report's text anywhere but at
// the start, and a summary with a key the kernel does not write.
func TestParseOOMRecordRefusesLookalikes(t *testing.T) {
	fake := "Killed process 4242 (x) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"
	for name, rec := range map[string]string{
		"segfault of a file so named": "6,664,1348984622,-;sh[27689]: segfault at 0 ip 00005612bd038462 sp 00007ffcb0c204f0 error 6 in " + fake + "[1462,5612bd038000+1000] likely on CPU 1 (core 1, socket 0)\n",
		"comm-first message":          "6,1,1,-;Out of memory: [12]: segfault at 0 ip 0 sp 0 error 6 in Killed process 4242 (x) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB[1,2+3]\n",
		"facility user":               "11,5,1,-;Memory cgroup out of memory: " + fake + "\n",
		"facility daemon":             "30,5,1,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=x,pid=4242,uid=0\n",
		"old kernel's bare line":      "3,5,1,-;" + fake + "\n",
		"inside a message":            "6,5,1,-;audit: Out of memory: " + fake + "\n",
		"trailing text":               "3,5,1,-;Out of memory: " + fake + " in [1,2+3]\n",
		"unknown key":                 "6,5,1,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),evil=1,task=x,pid=4242,uid=0\n",
		"unknown constraint":          "6,5,1,-;oom-kill:constraint=CONSTRAINT_EVIL,nodemask=(null),task=x,pid=4242,uid=0\n",
		"no header":                   "Out of memory: " + fake + "\n",
		"bad priority":                "x,5,1,-;Out of memory: " + fake + "\n",
		"negative priority":           "-3,5,1,-;Out of memory: " + fake + "\n",
		"bad timestamp":               "3,5,x,-;Out of memory: " + fake + "\n",
	} {
		if r, ok := parseOOMRecord(rec); ok {
			t.Errorf("%s: read as %+v", name, r)
		}
	}
}

// The attack end to end in the log: a segfault record naming the victim's
// pid after it started leaves no OOM report to find, so its SIGKILL keeps
// its real sender.
func TestOOMLogIgnoresSegfaultFileName(t *testing.T) {
	l := &oomLog{memcgs: map[int]string{}}
	l.record(kmsgSegfault)
	l.record("6,700,9000000,-;sh[27689]: segfault at 0 ip 00005612bd038462 sp 00007ffcb0c204f0 error 6 in Killed process 4242 (x) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB[1462,5612bd038000+1000] likely on CPU 1 (core 1, socket 0)\n")
	if kill, ok := l.lookup(proc.ID{PID: 4242, StartTime: 100}); ok {
		t.Fatalf("a segfault line was read as an OOM kill: %+v", kill)
	}
}

// FuzzOOMRecord: no record makes the parser panic, and what it accepts is
// a facility-kern record whose message starts with the OOM report's fixed
// prefix.
func FuzzOOMRecord(f *testing.F) {
	for _, s := range []string{kmsgSummary, kmsgKilled, kmsgSegfault,
		"3,9,5,-;Out of memory: Killed process 77 (java) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:1000 pgtables:8kB oom_score_adj:-100\n",
		"6,9,5,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=0-1,4,task=a,pid=77,uid=0\n",
		"11,5,1,-;Memory cgroup out of memory: Killed process 1 (x) total-vm:0kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		r, ok := parseOOMRecord(rec)
		if !ok {
			return
		}
		head, text, _ := strings.Cut(rec, ";")
		pri, _, _ := strings.Cut(head, ",")
		if n, err := strconv.ParseUint(pri, 10, 64); err != nil || n >= 8 {
			t.Fatalf("accepted %q: priority %q is not facility kern", rec, pri)
		}
		prefixes := []string{"oom-kill:constraint=", "Out of memory: Killed process ", "Out of memory (oom_kill_allocating_task): Killed process ", "Memory cgroup out of memory: Killed process "}
		if !startsWithAny(text, prefixes) {
			t.Fatalf("accepted %q: its message does not start with the report's prefix", rec)
		}
		if r.pid < 0 || r.rssKiB < 0 {
			t.Fatalf("accepted %q as %+v", rec, r)
		}
	})
}

func startsWithAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
