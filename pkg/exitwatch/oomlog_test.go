// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"testing"

	"github.com/pwatch/pwatch/pkg/proc"
)

// The kernel log's two lines of an OOM kill give the memory cgroup and the
// rss; a process that started after the kill (its pid reused) is not the
// victim, and a report is taken once.
func TestOOMLogReports(t *testing.T) {
	l := &oomLog{memcgs: map[int]string{}}
	l.record("6,101,5000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/web,task_memcg=/web,task=alloc,pid=4242,uid=0\n")
	l.record("3,102,5000100,-;Memory cgroup out of memory: Killed process 4242 (alloc) total-vm:40000kB, anon-rss:30000kB, file-rss:1200kB, shmem-rss:4kB, UID:0 pgtables:100kB oom_score_adj:0\n")
	l.record("6,103,5000200,-;an unrelated line\n")

	// Started 6 s after boot: after the kill at 5 s, so a reused pid.
	if _, ok := l.lookup(proc.ID{PID: 4242, StartTime: 600}); ok {
		t.Fatal("a process started after the OOM kill was taken for its victim")
	}
	kill, ok := l.lookup(proc.ID{PID: 4242, StartTime: 400})
	if !ok || kill.Memcg != "/web" || kill.RSSKiB != 31204 {
		t.Fatalf("lookup = %+v, %v; want /web and 31204 kB", kill, ok)
	}
	if _, ok := l.lookup(proc.ID{PID: 4242, StartTime: 400}); ok {
		t.Error("one report was taken twice")
	}
}
