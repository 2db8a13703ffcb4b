#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prints pfile(5), the man page of the pfile language, rendered from
# docs/pfile.md by go-md2man (pinned in go.mod): the document's title
# becomes the NAME line and its sections the page's.
# Usage: scripts/pfile-man.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
{
	printf '%% PFILE 5 "" "pwatch %s" "File Formats"\n\n' "${1:-dev}"
	printf '# NAME\n\npfile - the configuration language of pwatch'"'"'s pcheck and padmin\n\n'
	printf '# DESCRIPTION\n\n'
	# Drop the title, lift each heading one level (## is a section, ###
	# a subsection); headings inside code blocks stay as they are. A table
	# becomes a list, one item per row (its first cell, then "header: cell"
	# for the others): tables wider than a terminal make man warn.
	awk '
		function cells(line, out,   n, i) {
			sub(/^\| */, "", line); sub(/ *\| *$/, "", line)
			n = split(line, out, / *\| */)
			return n
		}
		NR == 1 && /^# / { next }
		/^```/ { code = !code }
		!code && /^##+ / { sub(/^#/, "") }
		!code && /^\|/ {
			if (!intable) { intable = 1; nh = cells($0, head); next }
			if ($0 ~ /^\| *-/) next
			n = cells($0, c)
			body = ""
			for (i = 2; i <= n; i++) {
				if (c[i] == "") continue
				body = body (body == "" ? "" : "; ") head[i] ": " c[i]
			}
			print c[1]; print ": " body; print ""
			next
		}
		{ intable = 0; print }
	' docs/pfile.md
	printf '\n# SEE ALSO\n\n**pcheck**(8), **padmin**(8)\n'
} | "$GO" tool go-md2man
