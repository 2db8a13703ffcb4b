#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Reads `go test -bench` output on stdin and prints one row per benchmark
# with its reported metrics, for `make bench`.
awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	row = sprintf("%-48s", name)
	for (i = 3; i < NF; i += 2) row = row sprintf("  %s %s", $i, $(i + 1))
	print row
	next
}
/^(FAIL|ok|---)/ { print }
'
