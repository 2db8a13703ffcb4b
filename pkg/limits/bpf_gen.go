// SPDX-License-Identifier: Apache-2.0

package limits

// The BPF objects are committed; `make generate` rebuilds them (needs clang).
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb -type sample sampler ../../bpf/sampler.bpf.c
