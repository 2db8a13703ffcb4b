// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//go:build ignore

// exitwatch.bpf.c: tell user space, and only user space that asked, when a
// watched process's whole thread group has exited (with its wait status),
// and when a process starts running a watched executable; and keep, in a map
// user space reads, the live processes of every watched tree (fork adds,
// exit removes), so that what is left of a dead service is known without
// reading /proc. Everything else is filtered here, in the kernel, so an
// unrelated fork or exit costs one map lookup.

#include "include/vmlinux_subset.h"
#include "include/bpf_helpers.h"
#include "include/bpf_core_read.h"
#include "include/task.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Matches the pid-hash sizes pcheck is meant for, with room to spare.
#define MAX_TRACKED 65536

// include/linux/sched/signal.h; unchanged since 2.6.
#define SIGNAL_GROUP_EXIT 0x00000004

enum event_kind {
	EVENT_EXIT = 1,
	EVENT_EXEC = 2,
};

// Flags of a tracked process.
enum proc_flag {
	// Its exit is reported to user space: a service's top-level process.
	PROC_WATCHED = 1,
};

// An executable, as the kernel names it: MKDEV-encoded device of its file
// system (major << 20 | minor) and its inode number.
struct exe_key {
	__u32 dev;
	__u32 _pad; // keep zero: keys are compared bytewise
	__u64 ino;
};

// Why a watched process died, as the kernel saw it happen.
enum cause_kind {
	CAUSE_NONE = 0,
	CAUSE_OOM = 1,    // the OOM killer chose it
	CAUSE_SIGNAL = 2, // a process sent the signal (sender_* say who)
};

// The last fatal news of a tracked process, until its exit reports it.
struct cause {
	__u64 start_time; // whose news: a reused pid never inherits it
	__u32 kind;       // enum cause_kind
	__u32 sig;        // CAUSE_SIGNAL: the signal sent
	__u32 sender_pid; // its thread-group id, as pcheck's namespace sees it
	__u32 sender_uid;
	char sender_comm[16];
};

struct event {
	__u64 at_ns;       // bpf_ktime_get_ns(): CLOCK_MONOTONIC
	__u64 start_time;  // /proc/PID/stat field 22 of the thread group
	__u32 pid;         // thread-group id
	__u32 kind;        // enum event_kind
	__u32 wait_status; // EVENT_EXIT: as wait(2) would report it
	__u32 ppid;        // EVENT_EXEC: the parent's thread-group id
	struct exe_key exe; // EVENT_EXEC: the watched executable it runs
	__u32 oom;          // EVENT_EXIT: the OOM killer chose it
	__u32 signal_sent;  // EVENT_EXIT: the last signal a process sent it (0 none)
	__u32 sender_pid;
	__u32 sender_uid;
	char sender_comm[16];
};

// A tracked process: a watched top-level one (root is itself), one of its
// descendants, or one that started a watched executable (its own root until
// user space watches it or re-roots it under a watched one).
struct tracked {
	__u64 start_time; // guards against pid reuse
	__u64 root_start; // the root's start time
	__u32 root;       // the tree it belongs to
	__u32 ppid;       // its parent at fork (or at exec)
	__u32 flags;      // enum proc_flag
	__u32 _pad;
};

// Unused globals that put these types into BTF, for bpf2go's -type.
const struct event *unused_event __attribute__((unused));
const enum event_kind unused_event_kind __attribute__((unused));
const struct tracked *unused_tracked __attribute__((unused));
const enum proc_flag unused_proc_flag __attribute__((unused));
const enum cause_kind unused_cause_kind __attribute__((unused));

// The tracked processes by thread-group id.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TRACKED);
	__type(key, __u32);
	__type(value, struct tracked);
} procs SEC(".maps");

// Fatal news of watched processes: an OOM kill, the last signal another
// process sent. Only watched processes get one (a lookup in procs first),
// so the map stays small; the exit takes it out.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct cause);
} causes SEC(".maps");

// Watched executables; the value is unused (kept for user space's bookkeeping).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct exe_key);
	__type(value, __u8);
} watched_exes SEC(".maps");

// User space may shrink it at load time (tests) but never below a page.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// Events dropped because the ring buffer was full. User space rescans its
// watched set whenever this grows, so a lost event never hides a death.
__u64 lost_events = 0;

// Forks into a tracked tree that the full procs map could not hold: user
// space then no longer trusts the trees and reads /proc instead.
__u64 untracked_forks = 0;

// The status wait(2) will return for the group: the group exit code after
// exit_group() or a fatal signal, otherwise the leader's own exit code.
static __always_inline __u32 group_wait_status(struct task_struct *task)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);

	if (BPF_CORE_READ(sig, flags) & SIGNAL_GROUP_EXIT)
		return BPF_CORE_READ(sig, group_exit_code);
	return BPF_CORE_READ(task, group_leader, exit_code);
}

static __always_inline struct event *reserve_event(void)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		__sync_fetch_and_add(&lost_events, 1);
	return e;
}

// lookup_live returns tgid's entry when it is the process that runs now; an
// entry left by a process that died before user space put it there is
// deleted on the way.
static __always_inline struct tracked *lookup_live(__u32 tgid, __u64 start)
{
	struct tracked *t = bpf_map_lookup_elem(&procs, &tgid);

	if (t && t->start_time != start) {
		bpf_map_delete_elem(&procs, &tgid);
		return 0;
	}
	return t;
}

// A raw tracepoint: attached without tracefs (often not mounted) and without
// the perf record a classic tracepoint builds. Its arguments are not used:
// their list changed across kernels; the exiting task is the current one.
SEC("raw_tracepoint/sched_process_exit")
int watched_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = tgid_seen(task);

	if (!tgid || !bpf_map_lookup_elem(&procs, &tgid))
		return 0;
	// do_exit() has already counted this thread out; others still run.
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u64 start = start_ticks(task);
	struct tracked *t = lookup_live(tgid, start);
	if (!t)
		return 0; // the pid now belongs to another process
	__u32 flags = t->flags;
	// Exiting threads can race to here; the one that deletes reports.
	if (bpf_map_delete_elem(&procs, &tgid) != 0 || !(flags & PROC_WATCHED))
		return 0;

	struct event *e = reserve_event();
	if (!e) {
		bpf_map_delete_elem(&causes, &tgid);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->at_ns = bpf_ktime_get_ns();
	e->start_time = start;
	e->pid = tgid;
	e->kind = EVENT_EXIT;
	e->wait_status = group_wait_status(task);
	struct cause *c = bpf_map_lookup_elem(&causes, &tgid);
	if (c && c->start_time == start) {
		e->oom = c->kind == CAUSE_OOM;
		e->signal_sent = c->sig;
		e->sender_pid = c->sender_pid;
		e->sender_uid = c->sender_uid;
		__builtin_memcpy(e->sender_comm, c->sender_comm, sizeof(e->sender_comm));
	}
	if (c)
		bpf_map_delete_elem(&causes, &tgid);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// watched_live is the entry of task's thread group when it is watched and
// still the process that was; its tgid and start time come back.
static __always_inline struct tracked *watched_live(struct task_struct *task, __u32 *tgid, __u64 *start)
{
	*tgid = tgid_seen(task);
	if (!*tgid)
		return 0;
	struct tracked *t = bpf_map_lookup_elem(&procs, tgid);
	if (!t || !(t->flags & PROC_WATCHED))
		return 0;
	*start = start_ticks(task);
	if (t->start_time != *start)
		return 0;
	return t;
}

// mark_victim(task, ...): the OOM killer chose task. Its exit says so.
SEC("raw_tracepoint/mark_victim")
int oom_victim(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	__u32 tgid;
	__u64 start;

	if (!watched_live(task, &tgid, &start))
		return 0;
	struct cause c = {.start_time = start, .kind = CAUSE_OOM};
	bpf_map_update_elem(&causes, &tgid, &c, BPF_ANY);
	return 0;
}

// signal_generate(sig, info, task, group, result): a signal queued for
// task. For a watched process, remember who sent it; the exit reports the
// last one, and user space names the sender when it is the signal that
// killed. An OOM kill stays an OOM kill. Any other signal costs the one
// lookup in procs.
SEC("raw_tracepoint/signal_generate")
int signal_sent(__u64 *ctx)
{
	struct kernel_siginfo *info = (struct kernel_siginfo *)ctx[1];
	struct task_struct *task = (struct task_struct *)ctx[2];
	int sig = (int)ctx[0];
	int result = (int)ctx[4];
	__u32 tgid;
	__u64 start;

	if (result != 0 || sig <= 0) // TRACE_SIGNAL_DELIVERED only
		return 0;
	// SEND_SIG_NOINFO (0) and SEND_SIG_PRIV (1) are no pointers; a
	// positive si_code is the kernel's own signal (a fault): no sender.
	if ((unsigned long)info > 1 && BPF_CORE_READ(info, si_code) > 0)
		return 0;
	if (!watched_live(task, &tgid, &start))
		return 0;
	struct cause *old = bpf_map_lookup_elem(&causes, &tgid);
	if (old && old->start_time == start && old->kind == CAUSE_OOM)
		return 0;
	struct task_struct *sender = (struct task_struct *)bpf_get_current_task();
	struct cause c = {
		.start_time = start,
		.kind = CAUSE_SIGNAL,
		.sig = sig,
		.sender_pid = tgid_seen(sender),
		.sender_uid = (__u32)bpf_get_current_uid_gid(),
	};
	bpf_get_current_comm(c.sender_comm, sizeof(c.sender_comm));
	bpf_map_update_elem(&causes, &tgid, &c, BPF_ANY);
	return 0;
}

// pcheck's own thread-group id as its pid namespace numbers it (set at
// load): each process pcheck forks (a restart script, a check's command)
// starts a tree of its own at its fork, so what it forks at once is in its
// tree before user space could follow it.
const volatile __u32 self_tgid = 0;

// sched_process_fork(parent, child): a new process (not a thread) forked
// by a tracked one joins its tree; one forked by pcheck roots its own.
// Its arguments have been the same since the tracepoint exists.
SEC("raw_tracepoint/sched_process_fork")
int tracked_fork(__u64 *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx[0];
	struct task_struct *child = (struct task_struct *)ctx[1];
	__u32 ptgid = tgid_seen(parent);
	int own = ptgid && ptgid == self_tgid;

	if (!ptgid || (!own && !bpf_map_lookup_elem(&procs, &ptgid)))
		return 0;
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; // a thread of the parent's group
	__u32 cpid = tgid_seen(child);
	if (!cpid)
		return 0;
	struct tracked c = {
		.start_time = BPF_CORE_READ(child, start_boottime) / NSEC_PER_USER_HZ_TICK,
		.ppid = ptgid,
	};
	if (own) {
		c.root = cpid;
		c.root_start = c.start_time;
	} else {
		struct tracked *p = lookup_live(ptgid, start_ticks(parent));
		if (!p)
			return 0;
		c.root = p->root;
		c.root_start = p->root_start;
	}
	if (bpf_map_update_elem(&procs, &cpid, &c, BPF_ANY) != 0)
		__sync_fetch_and_add(&untracked_forks, 1);
	return 0;
}

// Fires after the new image is installed, so mm->exe_file is the new program.
SEC("raw_tracepoint/sched_process_exec")
int watched_exec(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct inode *inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
	struct exe_key key = {};

	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(inode, i_ino);
	if (!bpf_map_lookup_elem(&watched_exes, &key))
		return 0;

	__u32 tgid = tgid_seen(task);
	if (!tgid)
		return 0;
	__u32 ppid = tgid_seen(BPF_CORE_READ(task, real_parent));
	__u64 start = start_ticks(task);
	// A new candidate master: track what it forks (a daemon's double fork,
	// its workers) from now on, unless it is in a tree already.
	if (!lookup_live(tgid, start)) {
		struct tracked t = {
			.start_time = start,
			.root_start = start,
			.root = tgid,
			.ppid = ppid,
		};
		if (bpf_map_update_elem(&procs, &tgid, &t, BPF_NOEXIST) != 0)
			__sync_fetch_and_add(&untracked_forks, 1);
	}

	struct event *e = reserve_event();
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->at_ns = bpf_ktime_get_ns();
	e->start_time = start;
	e->pid = tgid;
	e->kind = EVENT_EXEC;
	e->ppid = ppid;
	e->exe = key;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
