# SPDX-License-Identifier: Apache-2.0
# bash completion of pcheck and padmin (pwatch). Each program completes
# itself: given the words so far and --generate-bash-completion, it prints
# the candidates (commands, flags; padmin asks the running pcheck for its
# service names). Nothing printed: files, as bash would. While a flag is
# typed, "-" stands for it (the program lists every flag; the shell picks):
# a word "--" would turn the programs' completion off.
_pwatch() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local words=("${COMP_WORDS[@]:0:COMP_CWORD}") opts
	if [[ $cur == -* ]]; then
		opts=$("${words[@]}" - --generate-bash-completion 2>/dev/null)
	else
		opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=()
	[ -n "$opts" ] && mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	return 0
}
complete -o bashdefault -o default -F _pwatch pcheck padmin
