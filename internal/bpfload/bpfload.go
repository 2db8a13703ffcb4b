// SPDX-License-Identifier: Apache-2.0

// Package bpfload readies pwatch's BPF collections for loading: the
// memlock limit, and the pid namespace their programs number processes in
// (pidns_inum of bpf/include/task.h, which every program includes).
package bpfload

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/pwatch/pwatch/pkg/proc"
)

// Prepare raises the memlock limit and, inside a pid namespace, sets the
// spec's pidns_inum, so that its programs number processes as procRoot's
// /proc does.
func Prepare(spec *ebpf.CollectionSpec, procRoot string) error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raising the memlock limit for BPF: %w", err)
	}
	ns, err := proc.PIDNamespace(procRoot)
	if err != nil {
		return err
	}
	if ns == proc.InitialPIDNamespace {
		return nil
	}
	if err := spec.Variables["pidns_inum"].Set(uint32(ns)); err != nil {
		return fmt.Errorf("setting the pid namespace: %w", err)
	}
	return nil
}
