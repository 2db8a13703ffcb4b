// SPDX-License-Identifier: Apache-2.0

package exitwatch

import (
	"regexp"
	"strconv"
	"strings"
)

// The kernel log's OOM report, read so that nothing else passes for it.
//
// Much of what the kernel logs is text a user chose: the x86 segfault line
// ends with the faulting file's basename, so a file named "Killed process
// 123 (x) total-vm:0kB, ..." puts those words in a kernel record. Only the
// OOM killer's own two records are read, whole:
//
//   - facility kern (0): /dev/kmsg gives records that userspace writes
//     facility user (1) at least, so kern is the kernel's own;
//   - the message starts with the report's fixed prefix and matches its
//     format to the end. A message that starts with a user's text starts
//     with a comm (at most 15 bytes, then "[" or " "), shorter than either
//     prefix up to its first number;
//   - the oom-kill: summary's fields are the kernel's closed set, in the
//     kernel's order; its pid and uid are the last ones, after the task's
//     comm, so a comm cannot supply them.

// kmsgFacilityKern is the kernel's own facility.
const kmsgFacilityKern = 0

var (
	// oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/web,task_memcg=/web,task=alloc,pid=123,uid=0
	// (cpuset and mems_allowed with CONFIG_CPUSETS; oom_memcg for a memory
	// cgroup's OOM; task_memcg with the memory controller.)
	oomKillLine = regexp.MustCompile(`^oom-kill:constraint=CONSTRAINT_(?:NONE|CPUSET|MEMORY_POLICY|MEMCG),nodemask=(?:\(null\)|` + bitmapList + `)` +
		`(?:,cpuset=.*?,mems_allowed=(?:` + bitmapList + `)?)?(?:,oom_memcg=.*?)?(?:,task_memcg=(.*?))?,task=.*,pid=([0-9]+),uid=[0-9]+$`)
	// Memory cgroup out of memory: Killed process 123 (alloc) total-vm:40000kB, anon-rss:1kB, file-rss:2kB, shmem-rss:3kB, UID:0 pgtables:100kB oom_score_adj:0
	killedLine = regexp.MustCompile(`^(?:Out of memory|Out of memory \(oom_kill_allocating_task\)|Memory cgroup out of memory): ` +
		`Killed process ([0-9]+) \(.*\) total-vm:[0-9]+kB, anon-rss:([0-9]+)kB, file-rss:([0-9]+)kB, shmem-rss:([0-9]+)kB` +
		`(?:, UID:[0-9]+ pgtables:[0-9]+kB oom_score_adj:-?[0-9]+)?$`)
)

// bitmapList is the kernel's %*pbl: "0", "0-3,8".
const bitmapList = `[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*`

// oomRecord is what one kernel-log record says of an OOM kill: the
// oom-kill: summary (pid, memcg) or the Killed process report (pid, rss).
type oomRecord struct {
	killed bool // the Killed process report; else the summary
	pid    int
	memcg  string // the summary's task_memcg, unescaped
	rssKiB int64  // the report's anon + file + shmem rss
	atNs   uint64 // the record's timestamp: ns since boot
}

// parseOOMRecord reads one /dev/kmsg record, "PRI,SEQ,TS_USEC,FLAGS[,...];
// MESSAGE\n[ KEY=VALUE\n]...", and says whether it is one of the OOM
// killer's.
func parseOOMRecord(rec string) (oomRecord, bool) {
	head, text, ok := strings.Cut(rec, ";")
	if !ok {
		return oomRecord{}, false
	}
	fields := strings.Split(head, ",")
	if len(fields) < 4 {
		return oomRecord{}, false
	}
	pri, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil || pri>>3 != kmsgFacilityKern {
		return oomRecord{}, false
	}
	usec, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil || usec > 1<<63/1000 {
		return oomRecord{}, false
	}
	text, _, _ = strings.Cut(text, "\n") // the rest is the record's dictionary
	r := oomRecord{atNs: usec * 1000}
	switch {
	case strings.HasPrefix(text, "oom-kill:"):
		m := oomKillLine.FindStringSubmatch(text)
		if m == nil {
			return oomRecord{}, false
		}
		if r.pid, err = strconv.Atoi(m[2]); err != nil {
			return oomRecord{}, false
		}
		r.memcg = unescapeKmsg(m[1])
	case strings.HasPrefix(text, "Out of memory") || strings.HasPrefix(text, "Memory cgroup out of memory"):
		m := killedLine.FindStringSubmatch(text)
		if m == nil {
			return oomRecord{}, false
		}
		if r.pid, err = strconv.Atoi(m[1]); err != nil {
			return oomRecord{}, false
		}
		r.killed = true
		for _, s := range m[2:] {
			kb, err := strconv.ParseInt(s, 10, 64)
			if err != nil || kb > 1<<50 {
				return oomRecord{}, false
			}
			r.rssKiB += kb
		}
	default:
		return oomRecord{}, false
	}
	return r, true
}

// unescapeKmsg undoes /dev/kmsg's escaping: it writes a byte below 0x20,
// from 0x7f, and the backslash as \xNN. The value goes on raw, to be
// quoted where it is shown (internal/quote).
func unescapeKmsg(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
