// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//go:build ignore

// sampler.bpf.c: the counters of the limits' sampler (pkg/limits) for every
// process it asks for, in one pass over the kernel's tasks. Reading
// /proc/PID/stat and the size of /proc/PID/fd costs two system calls and a
// lock of the process per pid; one read of this iterator costs a map
// lookup per task on the host, and writes a record only for the tasks of
// the processes in `sampled`.

#include "include/vmlinux_subset.h"
#include "include/bpf_helpers.h"
#include "include/bpf_core_read.h"
#include "include/task.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// As many processes as exitwatch's trees hold.
#define MAX_SAMPLED 65536

// A descriptor table is counted up to this many words of its bitmap
// (4,194,304 descriptors); a larger one is reported as counted so far.
#define MAX_FD_WORDS 65536

// One record a task (a thread) of a sampled process.
struct sample {
	__u32 tgid;        // the process, as pcheck's pid namespace numbers it
	__u32 leader;      // 1: the group leader, whose record has the fields below
	__u64 start_time;  // the process's, in /proc's clock ticks
	__u64 runtime_ns;  // this thread's CPU time
	__u64 exited_ns;   // leader: the CPU time of the group's exited threads
	__u64 rss_pages;   // leader: resident pages (file, anon, shmem)
	__u32 threads;     // leader
	__u32 fds;         // leader: open descriptors
};

const struct sample *unused_sample __attribute__((unused));

// The processes to sample (thread-group ids); user space keeps it to the
// watched trees of services with limits. The value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SAMPLED);
	__type(key, __u32);
	__type(value, __u8);
} sampled SEC(".maps");

struct fd_count {
	unsigned long *bits;
	__u32 fds;
};

static long count_word(__u32 i, void *data)
{
	struct fd_count *c = data;
	unsigned long word = 0;

	if (bpf_probe_read_kernel(&word, sizeof(word), c->bits + i))
		return 1;
	c->fds += __builtin_popcountl(word);
	return 0;
}

// open_fds counts the set bits of the task's open-descriptor bitmap, as
// the kernel does for the size of /proc/PID/fd.
static __always_inline __u32 open_fds(struct task_struct *task)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return 0;
	__u32 words = BPF_CORE_READ(fdt, max_fds) / (8 * sizeof(unsigned long));
	if (words > MAX_FD_WORDS)
		words = MAX_FD_WORDS;
	struct fd_count c = {.bits = BPF_CORE_READ(fdt, open_fds)};
	bpf_loop(words, count_word, &c, 0);
	return c.fds;
}

static __always_inline __u64 positive(__s64 v)
{
	return v > 0 ? v : 0;
}

static __always_inline void sample_leader(struct task_struct *task, struct sample *s)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);
	struct mm_struct *mm = BPF_CORE_READ(task, mm);

	s->leader = 1;
	s->exited_ns = BPF_CORE_READ(sig, sum_sched_runtime);
	s->threads = BPF_CORE_READ(sig, nr_threads);
	if (mm) // a kernel thread, or a process on its way out, has none
		s->rss_pages = positive(BPF_CORE_READ(mm, rss_stat[MM_FILEPAGES].count)) +
			       positive(BPF_CORE_READ(mm, rss_stat[MM_ANONPAGES].count)) +
			       positive(BPF_CORE_READ(mm, rss_stat[MM_SHMEMPAGES].count));
	s->fds = open_fds(task);
}

SEC("iter/task")
int sample_tasks(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (!task)
		return 0; // the end of the pass
	__u32 tgid = tgid_seen(task);
	if (!tgid || !bpf_map_lookup_elem(&sampled, &tgid))
		return 0;
	struct sample s = {
		.tgid = tgid,
		.start_time = start_ticks(task),
		.runtime_ns = BPF_CORE_READ(task, se.sum_exec_runtime),
	};
	if (BPF_CORE_READ(task, pid) == BPF_CORE_READ(task, tgid))
		sample_leader(task, &s);
	bpf_seq_write(ctx->meta->seq, &s, sizeof(s));
	return 0;
}
