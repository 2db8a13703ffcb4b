/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types exitwatch.bpf.c reads, instead of a generated
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

struct mm_struct {
	struct file *exe_file;
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
};

#pragma clang attribute pop

#endif /* __VMLINUX_SUBSET_H__ */
