#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks that every source file git tracks carries its SPDX licence line;
# with --fix, adds the line where it is missing. pwatch is Apache-2.0; the
# BPF program in bpf/ is GPL-2.0-only OR BSD-2-Clause (its license section
# says "Dual BSD/GPL"); packaging/copyright says the same for Debian.
#
#   scripts/spdx.sh          list the files without it; exit 1 if any
#   scripts/spdx.sh --fix    add it to them (then review and commit)
#
# Where the line goes:
#   Go                     line 1: // SPDX-License-Identifier: Apache-2.0,
#                          then a blank line (a //go:build line may follow
#                          other line comments, so constraints still work)
#   bpf/ C and headers     line 1: // (C) or /* */ (headers) with
#                          GPL-2.0-only OR BSD-2-Clause; files copied from
#                          elsewhere (libbpf's headers) keep their own
#   other C                line 1: // SPDX-License-Identifier: Apache-2.0
#   scripts with #!, zsh   line 2, after the #! (or #compdef) line:
#   completions            # SPDX-License-Identifier: Apache-2.0
#   Makefile, YAML, units, line 1: # SPDX-License-Identifier: Apache-2.0
#   bash and fish
#   completions, lintian
#   overrides
#
# Exempt, by decision: generated files (a "Code generated ... DO NOT EDIT."
# line: bpf2go has no flag for a header, and regenerating would drop one;
# libbpf's generated bpf_helper_defs.h), the BPF objects, data without
# comments (JSON, go.sum), go.mod, the licence texts themselves (LICENSE,
# packaging/copyright), documentation (*.md), and the sample pfiles (the
# guide's samples are kept verbatim, and their line numbers are part of
# the docs and tests). A tracked file that fits none of these rules is an
# error, so that a new kind of file gets a decision.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=no
case ${1:-} in
--fix) fix=yes ;;
"") ;;
*) echo "usage: scripts/spdx.sh [--fix]" >&2; exit 2 ;;
esac

apache='SPDX-License-Identifier: Apache-2.0'
bpf='SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause'

# rule FILE prints how FILE is handled: "exempt", or "LINE TEXT" (the line
# number the SPDX comment stands on, and the comment), or "unknown".
rule() {
	local f=$1 first=
	case $f in
	*.md | *.pfile | *.json | *.o | go.mod | go.sum | LICENSE | packaging/copyright | .gitignore | */testdata/*)
		echo exempt
		return
		;;
	*.go | *.c | *.h)
		if head -n 5 -- "$f" | grep -Eq '^// Code generated .* DO NOT EDIT\.$|^/\* This is auto-generated file\.'; then
			echo exempt
			return
		fi
		;;
	esac
	case $f in
	*.go) echo "1 // $apache" ;;
	bpf/*.c) echo "1 // $bpf" ;;
	bpf/*.h) echo "1 /* $bpf */" ;;
	*.c) echo "1 // $apache" ;;
	# The status page's embedded assets (pkg/web/assets): a comment in
	# each one's own syntax, the page's template in html/template's.
	*.js) echo "1 // $apache" ;;
	*.css) echo "1 /* $apache */" ;;
	*.svg) echo "1 <!-- $apache -->" ;;
	pkg/web/assets/*.html) echo "1 {{/* $apache */ -}}" ;;
	*)
		IFS= read -r first <"$f" || true
		case $first in
		'#!'* | '#compdef'*) echo "2 # $apache" ;;
		*)
			case $f in
			Makefile | *.yml | *.yaml | *.service | *.bash | *.fish | packaging/lintian-overrides) echo "1 # $apache" ;;
			*) echo unknown ;;
			esac
			;;
		esac
		;;
	esac
}

# has FILE LINE: the SPDX line stands on line LINE. In bpf/ any licence
# counts (copied headers keep theirs); elsewhere it must be the one rule
# gives.
has() {
	local f=$1 n=$2 want=$3 got
	got=$(sed -n "${n}p" -- "$f")
	case $f in
	bpf/*) [[ $got == *SPDX-License-Identifier:* ]] ;;
	*) [ "$got" = "$want" ] ;;
	esac
}

# add FILE LINE TEXT puts TEXT on line LINE (a Go file also gets a blank
# line after it, as gofmt would keep a comment apart from what follows).
add() {
	local f=$1 n=$2 text=$3 tmp
	tmp=$(mktemp "$f.spdx.XXXXXX")
	{
		if [ "$n" = 2 ]; then
			head -n 1 -- "$f"
			echo "$text"
			tail -n +2 -- "$f"
		else
			echo "$text"
			case $f in *.go) echo ;; esac
			cat -- "$f"
		fi
	} >"$tmp"
	chmod --reference="$f" "$tmp"
	mv -f -- "$tmp" "$f"
}

missing=() unknown=() fixed=()
while IFS= read -r -d '' f; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	r=$(rule "$f")
	case $r in
	exempt) continue ;;
	unknown) unknown+=("$f"); continue ;;
	esac
	n=${r%% *} text=${r#* }
	has "$f" "$n" "$text" && continue
	if [ "$fix" = yes ]; then
		add "$f" "$n" "$text"
		fixed+=("$f")
	else
		missing+=("$f")
	fi
done < <(git ls-files -z)

status=0
if [ ${#unknown[@]} -gt 0 ]; then
	echo "spdx.sh: no rule for these files: decide in scripts/spdx.sh where their SPDX line goes, or exempt them:" >&2
	printf '  %s\n' "${unknown[@]}" >&2
	status=1
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "spdx.sh: ${#missing[@]} file(s) without their SPDX line (scripts/spdx.sh --fix adds it):" >&2
	printf '  %s\n' "${missing[@]}" >&2
	status=1
fi
if [ ${#fixed[@]} -gt 0 ]; then
	echo "spdx.sh: added the SPDX line to ${#fixed[@]} file(s); review and commit them (make generate-check confirms the BPF objects still match bpf/)."
fi
exit $status
