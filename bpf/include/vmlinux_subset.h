/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types pwatch's BPF programs read, instead of a generated
 * multi-megabyte vmlinux.h. Every struct is marked preserve_access_index, so
 * field offsets here are placeholders: the loader relocates each access
 * against the running kernel's BTF (CO-RE). Only names and types must match
 * the kernel's; fields may be listed in any order and most are left out.
 */
#ifndef __VMLINUX_SUBSET_H__
#define __VMLINUX_SUBSET_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

typedef __u32 dev_t;
typedef int pid_t;

/* From include/uapi/linux/bpf.h: only the values this program uses. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	int counter;
} atomic_t;

struct signal_struct {
	/* threads of the group not yet through do_exit */
	atomic_t live;
	int group_exit_code;
	unsigned int flags;
	int nr_threads;
	/* the CPU time of the group's threads that have exited, ns */
	__u64 sum_sched_runtime;
};

struct super_block {
	dev_t s_dev;
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct file {
	struct inode *f_inode;
};

/* Its count is the counter less the CPUs' unflushed parts, as /proc reads it. */
struct percpu_counter {
	__s64 count;
};

/* include/linux/mm_types_task.h */
enum {
	MM_FILEPAGES = 0,
	MM_ANONPAGES = 1,
	MM_SWAPENTS = 2,
	MM_SHMEMPAGES = 3,
	NR_MM_COUNTERS = 4,
};

struct mm_struct {
	struct file *exe_file;
	/* since Linux 6.2; older kernels fail to load the sampler (CO-RE) */
	struct percpu_counter rss_stat[NR_MM_COUNTERS];
};

struct fdtable {
	unsigned int max_fds;
	unsigned long *open_fds;
};

struct files_struct {
	struct fdtable *fdt;
};

struct sched_entity {
	/* the thread's CPU time so far, ns */
	__u64 sum_exec_runtime;
};

struct ns_common {
	unsigned int inum;
};

struct pid_namespace {
	struct ns_common ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

/* A pid as every namespace from the root down to its own (level) sees it. */
struct pid {
	unsigned int level;
	struct upid numbers[1];
};

/* The kernel nests these in an anonymous struct; CO-RE finds them there. */
struct kernel_siginfo {
	int si_signo;
	int si_errno;
	int si_code;
};

struct task_struct {
	pid_t pid;
	pid_t tgid;
	int exit_code;
	/* CLOCK_BOOTTIME ns at fork; /proc's start time (field 22) since 5.5 */
	__u64 start_boottime;
	struct task_struct *group_leader;
	struct task_struct *real_parent;
	struct pid *thread_pid;
	struct signal_struct *signal;
	struct mm_struct *mm;
	struct files_struct *files;
	struct sched_entity se;
};

struct seq_file;

/* The context of an iter/task program (kernel/bpf/task_iter.c). */
struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#pragma clang attribute pop

#endif /* __VMLINUX_SUBSET_H__ */
