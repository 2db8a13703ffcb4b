/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * task.h: how pwatch's BPF programs name a task as pcheck does: its
 * thread-group id in pcheck's pid namespace, and its start time in /proc's
 * clock ticks (what guards every pid against reuse).
 */
#ifndef __PWATCH_TASK_H__
#define __PWATCH_TASK_H__

// /proc reports start times in USER_HZ ticks: 100 on every Linux
// architecture pwatch builds for (nsec_to_clock_t in the kernel).
#define NSEC_PER_USER_HZ_TICK 10000000ULL

// The inode number of pcheck's pid namespace when it is not the initial
// one (set at load; 0 in the initial namespace). The maps and events then
// hold pids as pcheck's namespace numbers them, so they agree with its
// /proc; a process that namespace does not see is ignored.
const volatile __u32 pidns_inum = 0;

// MAX_PID_NS_LEVEL in the kernel.
#define MAX_PID_NS_LEVEL 32

// tgid_seen is task's thread-group id as pcheck's pid namespace numbers
// it; 0 when that namespace does not see the task.
static __always_inline __u32 tgid_seen(struct task_struct *task)
{
	if (!pidns_inum)
		return BPF_CORE_READ(task, tgid);
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	for (int i = 0; i < MAX_PID_NS_LEVEL; i++) {
		if (i > level)
			break;
		struct upid up = {};
		if (bpf_core_read(&up, sizeof(up), &pid->numbers[i]) != 0)
			return 0;
		if (BPF_CORE_READ(up.ns, ns.inum) == pidns_inum)
			return up.nr;
	}
	return 0;
}

static __always_inline __u64 start_ticks(struct task_struct *task)
{
	// /proc/PID/stat shows the group leader's start time; a non-leader
	// thread may be the last to exit.
	return BPF_CORE_READ(task, group_leader, start_boottime) / NSEC_PER_USER_HZ_TICK;
}
#endif /* __PWATCH_TASK_H__ */
