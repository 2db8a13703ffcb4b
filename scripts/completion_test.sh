#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tests the shell completions of scripts/completion/ with the built
# binaries (make build): bash, zsh and fish each complete padmin's and
# pcheck's commands and flags, and fall back to files where the programs
# offer nothing. (Service names come from the running pcheck: see
# cmd/padmin's TestCompletionOffersServiceNames.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/bin:$PATH
comp=$PWD/scripts/completion
checks=0
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # WHAT GOT WANT
	[ "$2" = "$3" ] || fail "$1: got $(printf '%q' "$2"), want $(printf '%q' "$3")"
	checks=$((checks + 1))
}
for b in padmin pcheck; do
	[ -x "bin/$b" ] || fail "bin/$b missing: run make build first"
done

# bash: the function the script registers, on a command line split into words.
bash_complete() {
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _pwatch; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp/pwatch.bash" "$@"
}
expect "bash: padmin st" "$(bash_complete padmin st)" "$(printf 'status\nstop\nstart')"
expect "bash: padmin reboot-count --r" "$(bash_complete padmin reboot-count --r)" "--reset"
expect "bash: padmin status --" "$(bash_complete padmin status --)" "$(printf -- '--json\n--help')"
expect "bash: padmin res" "$(bash_complete padmin res)" "restart"
expect "bash: padmin events --f" "$(bash_complete padmin events --f)" "--follow"
expect "bash: pcheck r" "$(bash_complete pcheck r)" "run"
expect "bash: pcheck run --wat" "$(bash_complete pcheck run --wat)" "--watcher"
expect "bash: padmin check (files)" "$(bash_complete padmin check '')" ""
# (grep without -q: -q exits at the first match, and the writer's SIGPIPE
# would fail the pipe under pipefail.)
bash -c 'source "$1"; complete -p padmin pcheck' _ "$comp/pwatch.bash" | grep -- "-o default -F _pwatch padmin" >/dev/null ||
	fail "bash: padmin does not fall back to files"
checks=$((checks + 1))

# zsh: the autoloaded function, with compadd and _files standing in for
# the completion system's.
zsh_complete() {
	zsh -f -c 'fpath=("$1" $fpath); autoload -Uz _pwatch; shift
		compadd() { [[ $1 == -a ]] && print -l -- ${(P)2} }
		_files() { print "<files>" }
		words=("$@"); CURRENT=$#; _pwatch' _ "$comp" "$@"
}
expect "zsh: padmin st" "$(zsh_complete padmin st)" "$(padmin --generate-bash-completion)"
expect "zsh: padmin status --" "$(zsh_complete padmin status --)" "$(printf -- '--json\n--help\n-h')"
expect "zsh: padmin check (files)" "$(zsh_complete padmin check '')" "<files>"

# fish: complete -C runs the registered completions on a command line.
fish_complete() { fish --no-config -c "source $comp/pwatch.fish; complete -C '$1'"; }
expect "fish: padmin st" "$(fish_complete 'padmin st' | sort)" "$(printf 'start\nstatus\nstop')"
expect "fish: padmin events --s" "$(fish_complete 'padmin events --s' | cut -f1 | sort)" "$(printf -- '--service\n--since')"
expect "fish: pcheck run --log" "$(fish_complete 'pcheck run --log')" "--log-format"
files=$(cd scripts && fish --no-config -c "source $comp/pwatch.fish; complete -C 'padmin check restart/demo.re'")
expect "fish: padmin check (files)" "$files" "restart/demo.restart"

echo "ok: $checks checks"
