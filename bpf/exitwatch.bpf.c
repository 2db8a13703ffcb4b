//go:build ignore

// exitwatch.bpf.c: tell user space, and only user space that asked, when a
// watched process's whole thread group has exited (with its wait status),
// and when a process starts running a watched executable. Everything else is
// filtered here, in the kernel, so an unwatched exit costs a map lookup.

#include "include/vmlinux_subset.h"
#include "include/bpf_helpers.h"
#include "include/bpf_core_read.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Matches the pid-hash sizes pcheck is meant for, with room to spare.
#define MAX_WATCHED 65536

// include/linux/sched/signal.h; unchanged since 2.6.
#define SIGNAL_GROUP_EXIT 0x00000004

// /proc reports start times in USER_HZ ticks: 100 on every Linux
// architecture pwatch builds for (nsec_to_clock_t in the kernel).
#define NSEC_PER_USER_HZ_TICK 10000000ULL

enum event_kind {
	EVENT_EXIT = 1,
	EVENT_EXEC = 2,
};

// An executable, as the kernel names it: MKDEV-encoded device of its file
// system (major << 20 | minor) and its inode number.
struct exe_key {
	__u32 dev;
	__u32 _pad; // keep zero: keys are compared bytewise
	__u64 ino;
};

struct event {
	__u64 at_ns;      // bpf_ktime_get_ns(): CLOCK_MONOTONIC
	__u64 start_time; // /proc/PID/stat field 22 of the thread group
	__u32 pid;        // thread-group id
	__u32 kind;       // enum event_kind
	__u32 wait_status; // EVENT_EXIT: as wait(2) would report it
	__u32 _pad;
	struct exe_key exe; // EVENT_EXEC: the watched executable it runs
};

// Unused globals that put these types into BTF, for bpf2go's -type.
const struct event *unused_event __attribute__((unused));
const enum event_kind unused_event_kind __attribute__((unused));

// Watched processes: tgid -> start time. The start time guards against pid
// reuse: an exit is only reported for the very process that was watched.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WATCHED);
	__type(key, __u32);
	__type(value, __u64);
} watched_pids SEC(".maps");

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

static __always_inline __u64 start_ticks(struct task_struct *task)
{
	// /proc/PID/stat shows the group leader's start time; a non-leader
	// thread may be the last to exit.
	return BPF_CORE_READ(task, group_leader, start_boottime) / NSEC_PER_USER_HZ_TICK;
}

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

// A raw tracepoint: attached without tracefs (often not mounted) and without
// the perf record a classic tracepoint builds. Its arguments are not used:
// their list changed across kernels; the exiting task is the current one.
SEC("raw_tracepoint/sched_process_exit")
int watched_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u64 *want_start = bpf_map_lookup_elem(&watched_pids, &tgid);

	if (!want_start)
		return 0;
	// do_exit() has already counted this thread out; others still run.
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u64 start = start_ticks(task);
	if (start != *want_start)
		return 0; // the pid now belongs to another process
	// Exiting threads can race to here; the one that deletes reports.
	if (bpf_map_delete_elem(&watched_pids, &tgid) != 0)
		return 0;

	struct event *e = reserve_event();
	if (!e)
		return 0;
	e->at_ns = bpf_ktime_get_ns();
	e->start_time = start;
	e->pid = tgid;
	e->kind = EVENT_EXIT;
	e->wait_status = group_wait_status(task);
	e->_pad = 0;
	e->exe.dev = 0;
	e->exe._pad = 0;
	e->exe.ino = 0;
	bpf_ringbuf_submit(e, 0);
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

	struct event *e = reserve_event();
	if (!e)
		return 0;
	e->at_ns = bpf_ktime_get_ns();
	e->start_time = start_ticks(task);
	e->pid = BPF_CORE_READ(task, tgid);
	e->kind = EVENT_EXEC;
	e->wait_status = 0;
	e->_pad = 0;
	e->exe = key;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
